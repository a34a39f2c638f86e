"""SAC losses as pure functions ``(modules, batch, ...) -> (loss, metrics)``.

Equation numbers refer to Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications".
A batch is a dict of tensors: ``obs (B, dx)`` (policy/critic inputs, command included),
``actions (B, da)``, ``rewards (B,)``, ``next_obs (B, dx)``, ``dones (B,)`` (1 where the episode
terminated, not where it was cut by a time limit).
"""

from __future__ import annotations

import torch
from torch import nn

Batch = dict[str, torch.Tensor]


def critic_loss(
    critic: nn.Module,
    target_critic: nn.Module,
    policy: nn.Module,
    batch: Batch,
    alpha: torch.Tensor,
    discount: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Soft Bellman residual (Eq. 5): ``E[(Q_i(s,a) - y)^2] / 2`` summed over both critics, with
    ``y = r + gamma (1 - d) (min_j Q'_j(s', a') - alpha log pi(a'|s'))``, ``a' ~ pi(.|s')``."""
    with torch.no_grad():
        next_actions, next_log_prob = policy.sample(batch["next_obs"], generator)
        target_q1, target_q2 = target_critic(batch["next_obs"], next_actions)
        soft_value = torch.min(target_q1, target_q2) - alpha * next_log_prob
        target = batch["rewards"] + discount * (1.0 - batch["dones"]) * soft_value
    q1, q2 = critic(batch["obs"], batch["actions"])
    loss = 0.5 * ((q1 - target) ** 2).mean() + 0.5 * ((q2 - target) ** 2).mean()
    return loss, {"critic_loss": loss.item(), "q_mean": q1.mean().item()}


def actor_loss(
    policy: nn.Module,
    critic: nn.Module,
    batch: Batch,
    alpha: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Policy loss (Eq. 7): ``E[alpha log pi(a|s) - min_i Q_i(s, a)]``, ``a ~ pi`` reparameterized.

    Returns:
        The loss, the (detached) log-probabilities for the temperature loss, and metrics.
    """
    actions, log_prob = policy.sample(batch["obs"], generator)
    q1, q2 = critic(batch["obs"], actions)
    loss = (alpha * log_prob - torch.min(q1, q2)).mean()
    return loss, log_prob.detach(), {"actor_loss": loss.item(), "entropy": -log_prob.mean().item()}


def temperature_loss(
    log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Temperature loss (Eq. 18): ``E[-alpha (log pi(a|s) + target_entropy)]``, on ``log alpha``."""
    loss = -(log_alpha.exp() * (log_prob + target_entropy)).mean()
    return loss, {"alpha_loss": loss.item(), "alpha": log_alpha.exp().item()}


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``theta' <- tau theta + (1 - tau) theta'``."""
    for target_param, param in zip(target.parameters(), source.parameters(), strict=True):
        target_param.lerp_(param, tau)

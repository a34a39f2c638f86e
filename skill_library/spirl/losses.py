"""SPiRL losses as pure functions (Pertsch et al. 2020).

Skill model (Eq. 1 and the prior objective of Sec. 3.1):
``L = ||a - a_hat||^2 / 2 + beta KL(q(z|a) || N(0, I)) + KL(sg(q(z|a)) || p(z|s_1))``.

Prior-regularized SAC in skill space (Eq. 3, Algorithm 1 lines 9-12): the entropy term of SAC is
replaced by ``-alpha KL(pi(z|s) || p(z|s))``, estimated from the reparameterized sample, and
alpha is tuned toward a target divergence delta.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from skill_library.spirl.networks import SkillModel

Batch = dict[str, torch.Tensor]


def gaussian_kl(
    mean_q: torch.Tensor, log_std_q: torch.Tensor, mean_p: torch.Tensor, log_std_p: torch.Tensor
) -> torch.Tensor:
    """``KL(N(mean_q, std_q) || N(mean_p, std_p))`` for diagonal Gaussians, summed over the last
    dimension: ``sum log(s_p / s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2``."""
    var_q, var_p = (2 * log_std_q).exp(), (2 * log_std_p).exp()
    return (log_std_p - log_std_q + (var_q + (mean_q - mean_p) ** 2) / (2 * var_p) - 0.5).sum(-1)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Log-density of ``x`` under a diagonal Gaussian, summed over the last dimension."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def skill_model_loss(
    model: SkillModel, batch: Batch, beta: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """The skill VAE's negative ELBO (Eq. 1) plus the prior loss.

    Args:
        model: encoder, decoder and prior.
        batch: ``actions (B, H, da)``, ``states (B, H, do)`` (the state before each action;
            ``states[:, 0]`` is s_1, the prior's input).
        beta: weight of the KL to the unit Gaussian.

    Returns:
        The total loss and its parts.
    """
    actions, states = batch["actions"], batch["states"]
    mean, log_std = model.encode(actions)
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
    z = mean + log_std.exp() * noise
    reconstruction = model.decode(z, states)
    recon = 0.5 * ((reconstruction - actions) ** 2).sum((1, 2)).mean()
    zeros = torch.zeros_like(mean)
    regularization = gaussian_kl(mean, log_std, zeros, zeros).mean()
    prior_mean, prior_log_std = model.prior_distribution(states[:, 0])
    # The prior learns from the posterior, not the other way round: stop the gradient.
    prior = gaussian_kl(mean.detach(), log_std.detach(), prior_mean, prior_log_std).mean()
    loss = recon + beta * regularization + prior
    return loss, {
        "reconstruction": recon.item(),
        "kl_to_unit_gaussian": regularization.item(),
        "prior_loss": prior.item(),
        "loss": loss.item(),
    }


def squashed_sample(
    policy: nn.Module, obs: torch.Tensor, bound: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``z = bound * tanh(u)``, ``u ~ N(mu(s), sigma(s))``, and ``log pi(z | s)`` with the change
    of variables ``- sum log(bound (1 - tanh(u)^2))``."""
    mean, log_std = policy(obs)
    pre = mean + log_std.exp() * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
    log_prob = gaussian_log_prob(pre, mean, log_std)
    log_prob = log_prob - (
        math.log(bound) + 2 * (math.log(2.0) - pre - nn.functional.softplus(-2 * pre))
    ).sum(-1)
    return bound * torch.tanh(pre), log_prob


def prior_divergence(
    log_pi: torch.Tensor, z: torch.Tensor, prior_mean: torch.Tensor, prior_log_std: torch.Tensor
) -> torch.Tensor:
    """One-sample estimate of ``KL(pi(z|s) || p(z|s))``: ``log pi(z|s) - log p(z|s)``, z ~ pi."""
    return log_pi - gaussian_log_prob(z, prior_mean, prior_log_std)


def spirl_critic_loss(
    critic: nn.Module,
    target_critic: nn.Module,
    policy: nn.Module,
    prior: nn.Module | None,
    batch: Batch,
    alpha: torch.Tensor,
    discount: float,
    bound: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Algorithm 1 line 9/11: ``Q_bar = r + gamma (1 - d) [Q'(s', z') - alpha D(s')]``, with
    ``D = KL(pi || p)`` (or ``log pi``, SAC's entropy term, when ``prior`` is None)."""
    with torch.no_grad():
        next_z, next_log_pi = squashed_sample(policy, batch["next_obs"], bound, generator)
        divergence = next_log_pi
        if prior is not None:
            divergence = prior_divergence(next_log_pi, next_z, *prior(batch["next_obs"]))
        q1_next, q2_next = target_critic(batch["next_obs"], next_z)
        soft = torch.min(q1_next, q2_next) - alpha * divergence
        target = batch["rewards"] + discount * (1.0 - batch["dones"]) * soft
    q1, q2 = critic(batch["obs"], batch["actions"])
    loss = 0.5 * ((q1 - target) ** 2).mean() + 0.5 * ((q2 - target) ** 2).mean()
    return loss, {"critic_loss": loss.item(), "q_mean": q1.mean().item()}


def spirl_actor_loss(
    policy: nn.Module,
    critic: nn.Module,
    prior: nn.Module | None,
    batch: Batch,
    alpha: torch.Tensor,
    bound: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Algorithm 1 line 10: minimize ``alpha D(s) - min_i Q_i(s, z)``, ``z ~ pi(.|s)``.

    Returns:
        The loss, the detached divergence (for the temperature), and metrics.
    """
    z, log_pi = squashed_sample(policy, batch["obs"], bound, generator)
    divergence = log_pi
    if prior is not None:
        with torch.no_grad():
            prior_mean, prior_log_std = prior(batch["obs"])
        divergence = prior_divergence(log_pi, z, prior_mean, prior_log_std)
    q1, q2 = critic(batch["obs"], z)
    loss = (alpha * divergence - torch.min(q1, q2)).mean()
    return (
        loss,
        divergence.detach(),
        {"actor_loss": loss.item(), "divergence": divergence.mean().item()},
    )


def spirl_temperature_loss(
    log_alpha: torch.Tensor, divergence: torch.Tensor, target: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Algorithm 1 line 12, the dual step of the constraint ``D <= delta``: alpha grows while the
    divergence exceeds its target (loss ``alpha (delta - D)`` on ``log alpha``). With the entropy
    variant (no prior), ``D = log pi`` and ``delta = -target entropy``: SAC's Eq. 18."""
    loss = (log_alpha.exp() * (target - divergence)).mean()
    return loss, {"alpha_loss": loss.item(), "alpha": log_alpha.exp().item()}

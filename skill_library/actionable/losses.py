"""Actionable Models losses as pure functions (Chebotar et al. 2021).

Survey notes, "ACTIONABLE MODELS - SETUP" (Sec. 3 of the paper):

- the goal-reaching loss ``L_g = E[(Q(s_t, a_t, g) - y(s_{t+1}, g))^2
  + E_{a~ ~ exp(Q)}[(Q(s_t, a~, g) - 0)^2]]``;
- the target ``y(s_{t+1}, g) = 1`` if ``s_{t+1} = g``, else ``gamma E_{a ~ pi}[Q(s_{t+1}, a, g)]``
  with ``pi(a | s, g) = argmax_a Q(s, a, g)``: reaching the goal ends the episode.

Following the issue (and QT-Opt, on which the paper builds) both terms use the cross-entropy of
a sigmoid Q instead of the squared error; the fixed point is the same. ``a~`` are actions away
from the data ("unseen actions"), weighted by ``softmax(Q)`` over the sampled set, which is the
``exp(Q)`` sampler of the notes restricted to the sample.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

Batch = dict[str, torch.Tensor]


def td_targets(
    rewards: torch.Tensor,
    next_values: torch.Tensor,
    discount: float,
    lower_bounds: torch.Tensor | None = None,
) -> torch.Tensor:
    """The target ``y = r + (1 - r) gamma V(s', g)``, ``r in {0, 1}`` (notes: ``y(s_{t+1}, g)``).

    Args:
        rewards: ``(B,)`` 1 where ``s'`` reached the goal (the episode ends there), else 0.
        next_values: ``(B,)`` ``max_a' Q_target(s', a', g)`` in [0, 1].
        discount: gamma.
        lower_bounds: optional ``(B,)`` values the target may not fall below (``gamma^(k-1)``
            when the data itself reaches the goal ``k`` steps later; 0 elsewhere).

    Returns:
        ``(B,)`` targets in [0, 1].
    """
    targets = rewards + (1.0 - rewards) * discount * next_values
    if lower_bounds is not None:
        targets = torch.maximum(targets, lower_bounds)
    return targets


def max_q(
    network: nn.Module, obs: torch.Tensor, goals: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """``max_a Q(s, a, g)`` over a sampled action set (the argmax the policy would take).

    Args:
        network: logits ``f(s, a, g)``.
        obs: ``(B, do)``.
        goals: ``(B, dg)``.
        actions: ``(B, N, da)`` candidate actions per row.

    Returns:
        ``(B,)`` the largest ``sigmoid(f)`` over the N candidates.
    """
    n = actions.shape[1]
    logits = network(
        obs.unsqueeze(1).expand(-1, n, -1), actions, goals.unsqueeze(1).expand(-1, n, -1)
    )
    return torch.sigmoid(logits.max(1).values)


def goal_reaching_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy ``-[y log Q + (1 - y) log(1 - Q)]`` with ``Q = sigmoid(logits)``, mean.

    Args:
        logits: ``(B,)`` ``f(s_t, a_t, g)`` of the data actions.
        targets: ``(B,)`` ``y`` in [0, 1] (no gradient flows into them).
    """
    return F.binary_cross_entropy_with_logits(logits, targets.detach())


def conservative_loss(negative_logits: torch.Tensor) -> torch.Tensor:
    """``E_{a~ ~ exp(Q)}[-log(1 - Q(s, a~, g))]``: unseen actions pushed towards Q = 0.

    Args:
        negative_logits: ``(B, M)`` logits of M unseen actions per row.

    Returns:
        The mean over rows of ``sum_m softmax(f)_m softplus(f_m)`` (the weights carry no
        gradient: they only pick which unseen actions matter, the most optimistic ones).
    """
    weights = torch.softmax(negative_logits.detach(), dim=1)
    return (weights * F.softplus(negative_logits)).sum(1).mean()


def actionable_loss(
    network: nn.Module,
    target_network: nn.Module,
    batch: Batch,
    discount: float,
    negative_weight: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_g``: cross-entropy TD loss plus the weighted conservative term.

    Args:
        network: the Q-network being trained (logits).
        target_network: its slowly updated copy, used for ``max_a' Q(s', a', g)``.
        batch: ``obs (B, do)``, ``actions (B, da)``, ``next_obs (B, do)``, ``goals (B, dg)``,
            ``rewards (B,)``, ``lower_bounds (B,)``, ``next_actions (B, N, da)`` (candidates
            for the max), and ``negative_actions (B, M, da)`` (M may be 0: no negatives).
        discount: gamma.
        negative_weight: weight of the conservative term.

    Returns:
        The loss and its parts.
    """
    with torch.no_grad():
        next_values = max_q(
            target_network, batch["next_obs"], batch["goals"], batch["next_actions"]
        )
        targets = td_targets(batch["rewards"], next_values, discount, batch.get("lower_bounds"))
    logits = network(batch["obs"], batch["actions"], batch["goals"])
    td = goal_reaching_loss(logits, targets)
    negatives = batch["negative_actions"]
    m = negatives.shape[1]
    if m > 0 and negative_weight > 0:
        negative_logits = network(
            batch["obs"].unsqueeze(1).expand(-1, m, -1),
            negatives,
            batch["goals"].unsqueeze(1).expand(-1, m, -1),
        )
        conservative = conservative_loss(negative_logits)
    else:
        conservative = torch.zeros((), dtype=logits.dtype)
    loss = td + negative_weight * conservative
    metrics = {
        "loss": loss.item(),
        "td_loss": td.item(),
        "conservative_loss": conservative.item(),
        "q_data": torch.sigmoid(logits).mean().item(),
        "target_mean": targets.mean().item(),
    }
    if m > 0 and negative_weight > 0:  # (no NaN placeholder: the metrics go to JSON)
        metrics["q_negative"] = torch.sigmoid(negative_logits).mean().item()
    return loss, metrics

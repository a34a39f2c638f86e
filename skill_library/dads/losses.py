"""DADS losses as pure functions (Sharma et al. 2019, "Dynamics-Aware Unsupervised Discovery of
Skills"). SAC's losses live in :mod:`skill_library.sac.losses`.

A batch holds ``dyn_obs (B, ds)`` and ``dyn_next_obs (B, ds)`` (the observation entries the
skill dynamics models, e.g. x-y under the x-y prior), ``skills (B, dz)`` and, optionally,
``weights (B,)`` (off-DADS importance weights).
"""

from __future__ import annotations

import math

import torch

from skill_library.networks import SkillDynamicsNet

Batch = dict[str, torch.Tensor]


def dynamics_loss(
    dynamics: SkillDynamicsNet, batch: Batch
) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative log-likelihood of the skill dynamics, ``-E[log q(s' | s, z)]`` (DADS Eq. 5,
    the variational lower bound's dynamics term), importance-weighted when ``weights`` is given.
    """
    log_prob = dynamics.log_prob(batch["dyn_obs"], batch["skills"], batch["dyn_next_obs"])
    weights = batch.get("weights")
    if weights is None:
        loss = -log_prob.mean()
    else:
        loss = -(weights * log_prob).sum() / weights.sum().clamp_min(1e-8)
    return loss, {"dynamics_loss": loss.item(), "dynamics_log_likelihood": log_prob.mean().item()}


def importance_weights(
    log_prob: torch.Tensor, behavior_log_prob: torch.Tensor, clip: float
) -> torch.Tensor:
    """Off-DADS importance weights of replayed transitions (Sharma et al. 2020, the
    importance-sampled skill-dynamics objective): ``w = min(pi(a|s,z) / pi_b(a|s,z), clip)``,
    the current policy's likelihood of the stored action over the behaviour policy's.

    Args:
        log_prob: ``(B,)`` ``log pi(a|s,z)`` under the current policy.
        behavior_log_prob: ``(B,)`` ``log pi_b(a|s,z)`` recorded when the action was taken.
        clip: upper bound of the weights.

    Returns:
        ``(B,)`` weights in ``[0, clip]``. :func:`dynamics_loss` normalizes them by their sum.
    """
    # The log-ratio is capped at 20 before exp so a stale action cannot overflow to inf.
    ratio = (log_prob - behavior_log_prob).clamp(max=20).exp()
    return ratio.clamp(max=clip)


def intrinsic_reward(
    dynamics: SkillDynamicsNet,
    states: torch.Tensor,
    next_states: torch.Tensor,
    skills: torch.Tensor,
    alternatives: torch.Tensor,
) -> torch.Tensor:
    """DADS's intrinsic reward, the sampled approximation of ``I(s'; z | s)``:

    ``r = log q(s' | s, z) - log sum_i q(s' | s, z_i) + log L``, ``z_i ~ p(z)``
    (DADS, Algorithm 1 line "compute r_z(s, a, s')").

    Args:
        dynamics: the skill dynamics.
        states: ``(B, ds)``.
        next_states: ``(B, ds)``.
        skills: ``(B, dz)`` the skills that produced the transitions.
        alternatives: ``(L, dz)`` skills drawn from the prior, shared across the batch.

    Returns:
        ``(B,)`` rewards.
    """
    with torch.no_grad():
        batch, count = states.shape[0], alternatives.shape[0]
        log_q = dynamics.log_prob(states, skills, next_states)
        repeated_states = states.repeat(count, 1)
        repeated_next = next_states.repeat(count, 1)
        repeated_skills = alternatives.repeat_interleave(batch, 0)
        log_alt = dynamics.log_prob(repeated_states, repeated_skills, repeated_next)
        log_alt = log_alt.view(count, batch)
        return log_q - (torch.logsumexp(log_alt, 0) - math.log(count))


def shaped_reward(
    intrinsic: torch.Tensor, window_full: torch.Tensor, dones: torch.Tensor, bonus: float
) -> torch.Tensor:
    """SAC's reward: the intrinsic reward where the transition closes a whole k-step window
    (a partial window has no k-step prediction to score), plus ``bonus`` on every step that
    does not end the episode.

    Args:
        intrinsic: ``(B,)`` DADS rewards of the windows.
        window_full: ``(B,)`` 1 where the window is whole, else 0.
        dones: ``(B,)`` 1 where the transition ended the episode (a fall), else 0.
        bonus: the survival bonus.

    Returns:
        ``(B,)`` rewards.
    """
    return intrinsic * window_full + bonus * (1.0 - dones)

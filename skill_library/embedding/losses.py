"""Skill-embedding losses as pure functions (Hausman et al. 2018, "Learning an Embedding Space
for Transferable Robot Skills").

The paper's entropy-regularized objective with a latent skill embedding (its Eq. 3, the
variational bound on the entropy of the hierarchical policy) is, per task ``t``,

    max E_{z ~ p(z|t), tau ~ pi(.|., z)} [ sum_i gamma^i r_hat(s_i, a_i, z, t) ] + alpha_1 H[p(z|t)]

    r_hat(s_i, a_i, z, t) = r_t(s_i, a_i) + alpha_2 log q(z | s_i^H) + alpha_3 H[pi(. | s_i, z)]

(the paper's Eq. 4 reward and its off-policy lower-bound Q-function ``Q(s, a; z, t)``, Eq. 5).
Here ``alpha_3`` is SAC's temperature, ``s_i^H`` the window of the last H states, and the
actor and the embedding are updated by reparameterized gradients of Q, the stochastic value
gradients the paper uses (SAC's actor update is the same estimator).

A batch holds ``obs (B, do)``, ``next_obs (B, do)``, ``actions (B, da)``, ``latents (B, dz)``
(the z the transition was collected with), ``tasks (B,)`` int64, ``task_one_hot (B, T)``,
``rewards (B,)`` (the task reward r_t), ``windows (B, H * do)`` (the window ending at
``next_obs``) and ``dones (B,)``.
"""

from __future__ import annotations

import torch
from torch import nn

from skill_library.embedding.networks import InferenceNet, TaskEmbedding

Batch = dict[str, torch.Tensor]


def augmented_reward(
    task_rewards: torch.Tensor, log_q: torch.Tensor, inference_weight: float, floor: float
) -> torch.Tensor:
    """The paper's Eq. 4 reward without the policy-entropy term (which SAC's soft value adds):
    ``r_hat = r_t + alpha_2 * max(log q(z | s^H), floor)``.

    Args:
        task_rewards: ``(B,)`` r_t(s, a).
        log_q: ``(B,)`` log q(z | window), nats.
        inference_weight: alpha_2.
        floor: lower clip of ``log_q`` (a bounded reward early in training).

    Returns:
        ``(B,)`` rewards.
    """
    return task_rewards + inference_weight * log_q.clamp_min(floor)


def inference_loss(inference: InferenceNet, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """Maximum likelihood of the inference network, ``-E[log q(z | s^H)]`` over replayed
    windows and the z that produced them (the paper's cross-entropy term, Sec. 3.1, as a loss
    for q).
    """
    log_q = inference.log_prob(batch["windows"], batch["latents"])
    loss = -log_q.mean()
    return loss, {"inference_loss": loss.item(), "inference_log_likelihood": log_q.mean().item()}


def policy_input(obs: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """``[obs, z]``: what pi(a | s, z) reads, ``(B, do + dz)``."""
    return torch.cat([obs, latents], -1)


def critic_input(obs: torch.Tensor, latents: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
    """``[obs, z, one_hot(t)]``: what Q(s, a; z, t) reads, ``(B, do + dz + T)``."""
    return torch.cat([obs, latents, one_hot], -1)


def critic_loss(
    critic: nn.Module,
    target_critic: nn.Module,
    policy: nn.Module,
    batch: Batch,
    rewards: torch.Tensor,
    alpha: torch.Tensor,
    discount: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Soft Bellman residual of the lower-bound Q-function (the paper's Eq. 5):
    ``E[(Q_i(s, a; z, t) - y)^2] / 2`` over both critics, with
    ``y = r_hat + gamma (1 - d) (min_j Q'_j(s', a'; z, t) - alpha log pi(a' | s', z))``,
    ``a' ~ pi(. | s', z)`` for the z the transition was collected with.

    Args:
        rewards: ``(B,)`` r_hat from :func:`augmented_reward`.
    """
    z, one_hot = batch["latents"], batch["task_one_hot"]
    with torch.no_grad():
        next_actions, next_log_prob = policy.sample(policy_input(batch["next_obs"], z), generator)
        next_x = critic_input(batch["next_obs"], z, one_hot)
        soft_value = torch.min(*target_critic(next_x, next_actions)) - alpha * next_log_prob
        target = rewards + discount * (1.0 - batch["dones"]) * soft_value
    q1, q2 = critic(critic_input(batch["obs"], z, one_hot), batch["actions"])
    loss = 0.5 * ((q1 - target) ** 2).mean() + 0.5 * ((q2 - target) ** 2).mean()
    return loss, {"critic_loss": loss.item(), "q_mean": q1.mean().item()}


def embedding_repulsion(means: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """A diversity term between the task embeddings' means (an addition to the paper's
    objective, which has none): a Gaussian-kernel repulsion as in SVGD's repulsive force
    (Liu and Wang 2016, Eq. 8),

    ``R = 1/T sum_i sum_{j != i} exp(-||mu_i - mu_j||^2 / (2 h^2))``,

    1 for each pair sharing one mean, ~0 for pairs several ``h`` apart. Minimizing it pushes
    means closer than ~2h apart away from each other; the Q-function alone can pull two tasks'
    means onto one point when one task's skill is the other's best effort so far.

    Args:
        means: ``(T, dz)`` the task embeddings' means.
        bandwidth: h, in units of z.

    Returns:
        A scalar.
    """
    tasks = means.shape[0]
    squared = ((means[:, None, :] - means[None, :, :]) ** 2).sum(-1)  # (T, T)
    kernel = torch.exp(-squared / (2.0 * bandwidth**2))
    off_diagonal = 1.0 - torch.eye(tasks, dtype=means.dtype)
    return (kernel * off_diagonal).sum() / tasks


def embedding_actor_loss(
    policy: nn.Module,
    critic: nn.Module,
    embedding: TaskEmbedding,
    batch: Batch,
    alpha: torch.Tensor,
    entropy_weight: float,
    generator: torch.Generator | None = None,
    repulsion_weight: float = 0.0,
    repulsion_bandwidth: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Actor and embedding loss, the stochastic value gradient of the objective above:

    ``E_{eps, a ~ pi}[alpha log pi(a | s, z) - min_i Q_i(s, a; z, t)] - alpha_1 E_t H[p(z | t)]
    + beta R(mu_1..mu_T)``

    with ``z = mu_t + sigma_t eps`` drawn afresh from the current embedding (reparameterized,
    so the gradient reaches ``mu_t`` and ``sigma_t``), ``a`` reparameterized through pi, and
    ``R`` the repulsion between the task means (:func:`embedding_repulsion`, weight beta).

    Returns:
        The loss, the (detached) ``log pi`` for the temperature loss, and metrics.
    """
    z = embedding.rsample(batch["tasks"], generator)
    actions, log_prob = policy.sample(policy_input(batch["obs"], z), generator)
    q = torch.min(*critic(critic_input(batch["obs"], z, batch["task_one_hot"]), actions))
    embedding_entropy = embedding.entropy(batch["tasks"])
    loss = (alpha * log_prob - q).mean() - entropy_weight * embedding_entropy.mean()
    repulsion = embedding_repulsion(embedding.all_means(), repulsion_bandwidth)
    if repulsion_weight > 0.0:
        loss = loss + repulsion_weight * repulsion
    metrics = {
        "actor_loss": loss.item(),
        "entropy": -log_prob.mean().item(),
        "embedding_entropy": embedding_entropy.mean().item(),
        "embedding_repulsion": repulsion.item(),
    }
    return loss, log_prob.detach(), metrics

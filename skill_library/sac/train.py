"""The SAC learner: owns the networks and optimizers, and takes update steps on batches."""

from __future__ import annotations

import copy

import torch

from skill_library.sac.config import SACConfig
from skill_library.sac.losses import Batch, actor_loss, critic_loss, soft_update, temperature_loss
from skill_library.sac.networks import TanhGaussianPolicy, TwinQ


class SACLearner:
    """Policy, twin critics, target critics and temperature, with their optimizers.

    Args:
        input_dim: size of the policy/critic input (observation features and command).
        action_dim: da.
        config: hyperparameters.
        seed: seed of the sampling noise in the losses.
    """

    def __init__(self, input_dim: int, action_dim: int, config: SACConfig, seed: int = 0):
        self.config = config
        self.policy = TanhGaussianPolicy(input_dim, action_dim, config.hidden)
        self.critic = TwinQ(input_dim, action_dim, config.hidden)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(float(config.initial_alpha)).log().requires_grad_(True)
        self.target_entropy = (
            -float(action_dim) if config.target_entropy is None else config.target_entropy
        )
        lr = config.learning_rate
        self.policy_optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=lr)
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def update(self, batch: Batch) -> dict[str, float]:
        """One critic, actor and temperature step on ``batch``; returns the metrics."""
        loss, metrics = critic_loss(
            self.critic,
            self.target_critic,
            self.policy,
            batch,
            self.alpha,
            self.config.discount,
            self.generator,
        )
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()

        self.critic.requires_grad_(False)
        loss, log_prob, actor_metrics = actor_loss(
            self.policy, self.critic, batch, self.alpha, self.generator
        )
        self.policy_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.policy_optimizer.step()
        self.critic.requires_grad_(True)
        metrics.update(actor_metrics)

        if self.config.learn_alpha:
            loss, alpha_metrics = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
            self.alpha_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.alpha_optimizer.step()
            metrics.update(alpha_metrics)
        soft_update(self.target_critic, self.critic, self.config.tau)
        return metrics

    def state_dict(self) -> dict[str, object]:
        """Everything needed to resume (networks, optimizers, temperature, RNG)."""
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "policy_optimizer": self.policy_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.generator.set_state(state["generator"])

"""SPiRL's downstream training (Pertsch et al. 2020, Algorithm 1): prior-regularized SAC in skill
space, plus the two baselines of the comparison: SAC in skill space without the prior, and flat
SAC on raw actions. The trained policy is packaged as a
:class:`~skill_library.spirl.policy.SPiRLPolicy`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from hrl_runtime.errors import IncompatibleError
from hrl_runtime.skill import Skill
from skill_library.replay import ReplayBuffer
from skill_library.sac import TanhGaussianPolicy, TwinQ, soft_update
from skill_library.spirl.config import SPiRLConfig
from skill_library.spirl.losses import (
    spirl_actor_loss,
    spirl_critic_loss,
    spirl_temperature_loss,
)
from skill_library.spirl.policy import SPiRLPolicy


class _SkillEnv:
    """Executes one high-level decision: a skill for its ``hold_steps`` (or a raw action for
    ``repeat`` steps); the reward is summed and the episode may end inside (Algorithm 1 line 6)."""

    def __init__(self, env: Any, skill: Skill | None, repeat: int):
        self.env, self.skill, self.repeat = env, skill, repeat
        self.control_steps = 0

    def reset(self, seed: int) -> np.ndarray:
        if self.skill is not None:
            self.skill.reset()
        return self.env.reset(seed=seed)[0]

    def step(self, obs: np.ndarray, command: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        total = 0.0
        for _ in range(self.repeat):
            action = command if self.skill is None else self.skill.act(obs, command)
            obs, reward, terminated, truncated, _ = self.env.step(action)
            total += float(reward)
            self.control_steps += 1
            if terminated or truncated:
                return obs, total, terminated, truncated
        return obs, total, False, False


class SPiRLTrainer:
    """Trains a high-level policy with prior-regularized SAC (or a baseline) on an environment.

    Args:
        skill: the skill (with a prior for ``spirl``); None for ``flat_sac``.
        env_id: the downstream task.
        config: settings.
    """

    def __init__(self, skill: Skill | None, env_id: str, config: SPiRLConfig):
        import envs

        if config.method not in ("spirl", "skill_sac", "flat_sac"):
            raise IncompatibleError(f"unknown method {config.method!r}")
        if config.method != "flat_sac" and skill is None:
            raise IncompatibleError(f"method {config.method} needs a skill")
        if config.method == "spirl" and (skill is None or skill.prior is None):
            raise IncompatibleError("spirl needs a skill whose manifest offers a prior")
        self.config, self.skill, self.env_id = config, skill, env_id
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.env = envs.make_env(env_id)
        self.eval_env = envs.make_env(env_id)
        obs_dim = self.env.observation_space.shape[0]
        if config.method == "flat_sac":
            self.bound = 1.0
            command_dim = self.env.action_space.shape[0]
            repeat = config.flat_action_repeat
        else:
            self.bound = float(skill.command_space.high[0])
            command_dim = skill.command_space.shape[0]
            repeat = skill.hold_steps
        self.repeat = repeat
        self.rollout = _SkillEnv(self.env, None if config.method == "flat_sac" else skill, repeat)
        # The evaluator gets its own skill copy: a skill holds its action between ticks.
        self.evaluator = _SkillEnv(self.eval_env, copy.deepcopy(skill) if skill else None, repeat)
        self.policy = TanhGaussianPolicy(obs_dim, command_dim, config.hidden)
        self.critic = TwinQ(obs_dim, command_dim, config.hidden)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.initial_alpha), requires_grad=True)
        lr = config.learning_rate
        self.optimizers = {
            "policy": torch.optim.Adam(self.policy.parameters(), lr=lr),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=lr),
            "alpha": torch.optim.Adam([self.log_alpha], lr=lr),
        }
        if config.method == "spirl":
            self.prior_net = skill.prior.model.prior
            self.target = config.target_divergence
        else:
            self.prior_net = None
            entropy = (
                -float(command_dim) if config.target_entropy is None else config.target_entropy
            )
            self.target = -entropy  # D = log pi, delta = -target entropy
        self.generator = torch.Generator().manual_seed(config.seed)
        self.replay = ReplayBuffer(
            max(10_000, config.env_steps // repeat + 1),
            {
                "obs": (obs_dim,),
                "actions": (command_dim,),
                "rewards": (),
                "next_obs": (obs_dim,),
                "dones": (),
            },
        )
        self.curve: list[dict[str, float]] = []

    def _explore(self, obs: np.ndarray, high_level_steps: int) -> np.ndarray:
        if high_level_steps < self.config.warmup:
            if self.config.method == "spirl":  # start from the prior's own proposals
                z = self.skill.prior.sample(obs, 1, self.rng)[0]
                return np.clip(z, -self.bound * 0.999, self.bound * 0.999).astype(np.float32)
            return self.rng.uniform(-self.bound, self.bound, self.policy.mean.out_features).astype(
                np.float32
            )
        with torch.no_grad():
            mean, log_std = self.policy(torch.as_tensor(obs, dtype=torch.float32)[None])
            pre = mean + log_std.exp() * torch.randn(mean.shape, generator=self.generator)
        return (self.bound * torch.tanh(pre[0])).numpy().astype(np.float32)

    def update(self) -> dict[str, float]:
        config = self.config
        batch = self.replay.sample(self.rng, config.batch_size)
        alpha = self.log_alpha.detach().exp()
        loss, metrics = spirl_critic_loss(
            self.critic, self.target_critic, self.policy, self.prior_net, batch, alpha,
            config.discount, self.bound, self.generator,
        )  # fmt: skip
        self.optimizers["critic"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["critic"].step()
        self.critic.requires_grad_(False)
        loss, divergence, actor_metrics = spirl_actor_loss(
            self.policy, self.critic, self.prior_net, batch, alpha, self.bound, self.generator
        )
        self.optimizers["policy"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["policy"].step()
        self.critic.requires_grad_(True)
        loss, alpha_metrics = spirl_temperature_loss(self.log_alpha, divergence, self.target)
        self.optimizers["alpha"].zero_grad(set_to_none=True)
        loss.backward()
        self.optimizers["alpha"].step()
        soft_update(self.target_critic, self.critic, config.tau)
        return {**metrics, **actor_metrics, **alpha_metrics}

    def evaluate(self, episodes: int, seed: int) -> dict[str, float]:
        """Deterministic policy; success = the episode terminated (reached the goal)."""
        successes, returns = 0, []
        for episode in range(episodes):
            obs = self.evaluator.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                with torch.no_grad():
                    mean, _ = self.policy(torch.as_tensor(obs, dtype=torch.float32)[None])
                command = (self.bound * torch.tanh(mean[0])).numpy().astype(np.float32)
                obs, reward, terminated, truncated = self.evaluator.step(obs, command)
                total += reward
                done = terminated or truncated
            successes += bool(terminated)
            returns.append(total)
        return {"success_rate": successes / episodes, "mean_return": float(np.mean(returns))}

    def train(self, progress: bool = True) -> list[dict[str, float]]:
        """Runs to the control-step budget; returns the learning curve."""
        from tqdm import tqdm

        config = self.config
        obs = self.rollout.reset(seed=int(self.rng.integers(2**31)))
        high_level_steps, next_eval, started = 0, 0, time.perf_counter()
        bar = tqdm(total=config.env_steps, disable=not progress, unit="step", desc=config.method)
        metrics: dict[str, float] = {}
        while self.rollout.control_steps < config.env_steps:
            if self.rollout.control_steps >= next_eval:
                result = self.evaluate(config.eval_episodes, seed=10_000 + config.seed * 100)
                self.curve.append(
                    {
                        "env_steps": self.rollout.control_steps,
                        **result,
                        **{k: metrics.get(k, float("nan")) for k in ("alpha", "divergence")},
                    }
                )
                bar.set_postfix(success=f"{result['success_rate']:.2f}")
                next_eval += config.eval_every
            before = self.rollout.control_steps
            command = self._explore(obs, high_level_steps)
            next_obs, reward, terminated, truncated = self.rollout.step(obs, command)
            self.replay.add(
                obs=obs[None], actions=command[None], rewards=np.array([reward]),
                next_obs=next_obs[None], dones=np.array([float(terminated)]),
            )  # fmt: skip
            high_level_steps += 1
            obs = next_obs
            if terminated or truncated:
                obs = self.rollout.reset(seed=int(self.rng.integers(2**31)))
            if high_level_steps >= config.warmup:
                for _ in range(config.updates_per_step):
                    metrics = self.update()
            bar.update(self.rollout.control_steps - before)
        bar.close()
        result = self.evaluate(config.eval_episodes, seed=10_000 + config.seed * 100)
        self.curve.append(
            {
                "env_steps": self.rollout.control_steps,
                **result,
                "alpha": metrics.get("alpha", float("nan")),
                "divergence": metrics.get("divergence", float("nan")),
            }
        )
        self.seconds = time.perf_counter() - started
        return self.curve

    def make_policy(self) -> SPiRLPolicy:
        if self.skill is None:
            raise IncompatibleError("flat_sac trains no skill-space policy to package")
        return SPiRLPolicy(
            copy.deepcopy(self.policy),
            f"{self.skill.name}@{self.skill.version}",
            self.skill.observation_space,
            self.skill.command_space,
            self.skill.hold_steps,
        )

    def config_json(self) -> dict[str, Any]:
        return asdict(self.config)

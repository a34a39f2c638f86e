"""SPiRL's downstream training (Pertsch et al. 2020, Algorithm 1): prior-regularized SAC in skill
space, plus the two baselines of the comparison: SAC in skill space without the prior, and flat
SAC on raw actions. The trained policy is packaged as a
:class:`~skill_library.spirl.policy.SPiRLPolicy`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrl_runtime.errors import IncompatibleError
from hrl_runtime.skill import Skill, check_compatible
from skill_library.replay import ReplayBuffer
from skill_library.run import TrainingRun, save_package
from skill_library.spirl.config import SPiRLConfig
from skill_library.spirl.policy import SPiRLPolicy
from skill_library.spirl.train import HighLevelLearner


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

    Raises:
        ConfigError: a config field out of range (:meth:`SPiRLConfig.validate`).
        IncompatibleError: an unknown method, or a skill that cannot serve it or does not fit
            the environment's observations and actions.
    """

    def __init__(self, skill: Skill | None, env_id: str, config: SPiRLConfig):
        import envs

        config.validate()
        _check_method(skill, config)
        self.config, self.skill, self.env_id = config, skill, env_id
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.env = envs.make_env(env_id)
        self.eval_env = envs.make_env(env_id)
        if skill is not None and config.method != "flat_sac":
            check_compatible(skill, self.env, env_id)
        obs_dim = self.env.observation_space.shape[0]
        low_level = None if config.method == "flat_sac" else skill
        if low_level is None:
            self.bound = 1.0
            command_dim = self.env.action_space.shape[0]
            self.repeat = config.flat_action_repeat
        else:
            self.bound = float(skill.command_space.high[0])
            command_dim = skill.command_space.shape[0]
            self.repeat = skill.hold_steps
        self.rollout = _SkillEnv(self.env, low_level, self.repeat)
        # The evaluator gets its own skill copy: a skill holds its action between ticks.
        self.evaluator = _SkillEnv(self.eval_env, copy.deepcopy(low_level), self.repeat)
        prior, target = _regularizer(skill, config, command_dim)
        self.learner = HighLevelLearner(obs_dim, command_dim, self.bound, prior, target, config)
        self.replay = ReplayBuffer(
            max(10_000, config.env_steps // self.repeat + 1),
            {
                "obs": (obs_dim,),
                "actions": (command_dim,),
                "rewards": (),
                "next_obs": (obs_dim,),
                "dones": (),
            },
        )
        self.curve: list[dict[str, float]] = []
        self.seconds = 0.0
        """Wall-clock seconds of the last :meth:`train`."""

    def train(self, progress: bool = True) -> list[dict[str, float]]:
        """Runs to the control-step budget, evaluating every ``eval_every`` control steps and
        at the end; returns the learning curve."""
        config = self.config
        run = TrainingRun(
            config, None, tag="spirl", budget="env_steps", progress=progress, label=config.method
        )
        obs = self.rollout.reset(seed=int(self.rng.integers(2**31)))
        high_level_steps, next_eval = 0, 0
        metrics: dict[str, float] = {}
        with run.session():
            while self.rollout.control_steps < config.env_steps:
                if self.rollout.control_steps >= next_eval:
                    success = self._evaluate_on_curve(metrics)
                    run.advance(0, success=f"{success:.2f}")
                    next_eval += config.eval_every
                before = self.rollout.control_steps
                obs = self._collect(obs, high_level_steps)
                high_level_steps += 1
                if high_level_steps >= config.warmup:
                    for _ in range(config.updates_per_step):
                        metrics = self.update()
                run.advance(self.rollout.control_steps - before)
            self._evaluate_on_curve(metrics)
        self.seconds = run.seconds
        return self.curve

    def _collect(self, obs: np.ndarray, high_level_steps: int) -> np.ndarray:
        """One high-level step into the replay (Algorithm 1 lines 5-7); returns the next obs."""
        command = self._explore(obs, high_level_steps)
        next_obs, reward, terminated, truncated = self.rollout.step(obs, command)
        self.replay.add(
            obs=obs[None], actions=command[None], rewards=np.array([reward]),
            next_obs=next_obs[None], dones=np.array([float(terminated)]),
        )  # fmt: skip
        if terminated or truncated:
            return self.rollout.reset(seed=int(self.rng.integers(2**31)))
        return next_obs

    def _explore(self, obs: np.ndarray, high_level_steps: int) -> np.ndarray:
        policy = self.learner.policy
        if high_level_steps < self.config.warmup:
            if self.config.method == "spirl":  # start from the prior's own proposals
                z = self.skill.prior.sample(obs, 1, self.rng)[0]
                return np.clip(z, -self.bound * 0.999, self.bound * 0.999).astype(np.float32)
            return self.rng.uniform(-self.bound, self.bound, policy.mean.out_features).astype(
                np.float32
            )
        with torch.no_grad():
            mean, log_std = policy(torch.as_tensor(obs, dtype=torch.float32)[None])
            noise = torch.randn(mean.shape, generator=self.learner.generator)
            pre = mean + log_std.exp() * noise
        return (self.bound * torch.tanh(pre[0])).numpy().astype(np.float32)

    def update(self) -> dict[str, float]:
        """One update of the high level on a replay batch (Algorithm 1 lines 9-13)."""
        return self.learner.update(self.replay.sample(self.rng, self.config.batch_size))

    def _evaluate_on_curve(self, metrics: dict[str, float]) -> float:
        """Appends an evaluation and the last temperature and divergence to the learning
        curve; returns the success rate."""
        result = self.evaluate(self.config.eval_episodes, seed=10_000 + self.config.seed * 100)
        last = {k: metrics.get(k, float("nan")) for k in ("alpha", "divergence")}
        self.curve.append({"env_steps": self.rollout.control_steps, **result, **last})
        return result["success_rate"]

    def evaluate(self, episodes: int, seed: int) -> dict[str, float]:
        """Deterministic policy; success = the episode terminated (reached the goal)."""
        successes, returns = 0, []
        for episode in range(episodes):
            obs = self.evaluator.reset(seed=seed + episode)
            total, done = 0.0, False
            while not done:
                with torch.no_grad():
                    mean, _ = self.learner.policy(torch.as_tensor(obs, dtype=torch.float32)[None])
                command = (self.bound * torch.tanh(mean[0])).numpy().astype(np.float32)
                obs, reward, terminated, truncated = self.evaluator.step(obs, command)
                total += reward
                done = terminated or truncated
            successes += bool(terminated)
            returns.append(total)
        return {"success_rate": successes / episodes, "mean_return": float(np.mean(returns))}

    def make_policy(self) -> SPiRLPolicy:
        """The trained policy over the skill's commands."""
        if self.skill is None:
            raise IncompatibleError("flat_sac trains no skill-space policy to package")
        return SPiRLPolicy(
            copy.deepcopy(self.learner.policy),
            f"{self.skill.name}@{self.skill.version}",
            self.skill.observation_space,
            self.skill.command_space,
            self.skill.hold_steps,
        )

    def package(
        self, out_dir: Path | str, *, name: str, command: str = "", version: str = "1.0.0"
    ) -> Path:
        """Writes :meth:`make_policy` as a package with the learning curve as its metrics.

        Args:
            out_dir: the package directory.
            name: package name.
            version: package version.
            command: the command line, for the manifest (by default this process's arguments).
        """
        policy = self.make_policy()
        return save_package(
            policy,
            out_dir,
            name=name,
            version=version,
            description=(
                f"{self.config.method} high-level policy over {policy.skill_ref} on {self.env_id}"
            ),
            command=command,
            config=self.config,
            training={"env": self.env_id},
            metrics={
                "final": self.curve[-1],
                "curve": self.curve,
                "wall_seconds": round(self.seconds, 1),
            },
        )


def _check_method(skill: Skill | None, config: SPiRLConfig) -> None:
    if config.method not in ("spirl", "skill_sac", "flat_sac"):
        raise IncompatibleError(f"unknown method {config.method!r}")
    if config.method != "flat_sac" and skill is None:
        raise IncompatibleError(f"method {config.method} needs a skill")
    if config.method == "spirl" and (skill is None or skill.prior is None):
        raise IncompatibleError("spirl needs a skill whose manifest offers a prior")


def _regularizer(
    skill: Skill | None, config: SPiRLConfig, command_dim: int
) -> tuple[torch.nn.Module | None, float]:
    """The prior network and the target delta of the policy's divergence: KL to the skill prior
    (spirl), else ``log pi`` with delta = minus the target entropy (SAC)."""
    if config.method == "spirl":
        return skill.prior.model.prior, config.target_divergence
    entropy = -float(command_dim) if config.target_entropy is None else config.target_entropy
    return None, -entropy

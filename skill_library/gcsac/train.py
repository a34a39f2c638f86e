"""Goal-conditioned SAC training with the dense distance reward.

Every episode samples a goal per environment from the environment's goal space (Ant-v5: 3-8 m
from the start, as ``hrl follow --random-goals`` samples them) and runs the policy
``pi(a | s, g - xy)`` for ``episode_length`` steps or until the torso is within
``success_radius`` of the goal. The reward of a step is :func:`dense_reward`: the progress
toward the goal per second plus the environment's healthy reward.

Which transitions bootstrap: a fall (the environment terminates: Ant's torso left its healthy
range) is a true end (``done = 1``, no value after it); the time limit and reaching the goal
only cut the episode (``done = 0``, the target bootstraps from the next state). Reaching the
goal is deliberately not terminal: ending the value there would forfeit the healthy reward of
the steps after it, so a policy would learn to stay away from the goal.

Each iteration collects one episode in every environment, then takes
``sac_updates_per_step`` SAC updates per collected step (the shared learner of
:mod:`skill_library.sac`). This module is the only place in ``gcsac/`` that steps an optimizer.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrl_runtime.errors import ConfigError
from skill_library.gcsac.config import GCSACConfig
from skill_library.gcsac.skill import GCSACSkill, GCSACSkillConfig, policy_input
from skill_library.replay import ReplayBuffer
from skill_library.run import TrainingRun
from skill_library.sac.train import SACLearner

logger = logging.getLogger(__name__)


def dense_reward(
    distance: np.ndarray,
    next_distance: np.ndarray,
    terminated: np.ndarray,
    dt: float,
    healthy_reward: float = 1.0,
    progress_weight: float = 1.0,
) -> np.ndarray:
    """``w (d_t - d_{t+1}) / dt + healthy_reward * (1 - terminated)``.

    Args:
        distance: ``(N,)`` distance to the goal before the step, metres.
        next_distance: ``(N,)`` distance after it.
        terminated: ``(N,)`` 1 where the step ended in a fall (no healthy reward for it, as
            the environment's own healthy reward is 0 on the step the body leaves the range).
        dt: seconds one step lasts (the environment's control period).
        healthy_reward: reward of a step that stays healthy.
        progress_weight: ``w``.

    Returns:
        ``(N,)`` float32 rewards.
    """
    progress = (np.asarray(distance, np.float64) - next_distance) / dt
    healthy = healthy_reward * (1.0 - np.asarray(terminated, np.float64))
    return (progress_weight * progress + healthy).astype(np.float32)


def episode_ends(
    terminated: np.ndarray, next_distance: np.ndarray, step: int, config: GCSACConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which environments stop after policy step ``step`` (0-based), and why.

    Returns:
        ``dones`` (float32, 1 only for a fall: SAC must not bootstrap there), ``success``
        (within ``success_radius``, not fallen) and ``ended`` (fall, success or the time limit
        ``episode_length``: the environment collects no more this episode).
    """
    terminated = np.asarray(terminated, bool)
    success = (np.asarray(next_distance) <= config.success_radius) & ~terminated
    time_up = step + 1 >= config.episode_length
    ended = terminated | success | time_up
    return terminated.astype(np.float32), success, ended


class _Envs:
    """``num_envs`` environments in lockstep (an :class:`envs.batch.EnvBatch`), one episode
    each per :meth:`GCSACTrainer.collect`, each with its own goal."""

    def __init__(self, config: GCSACConfig, rng: np.random.Generator):
        import envs
        from envs.batch import EnvBatch

        self.batch = EnvBatch(
            config.env_id,
            config.num_envs,
            config.episode_length + 1,
            config.env_workers,
            worker_backend=config.env_worker_backend,
        )
        self.goal_space = envs.goal_space(self.batch.first)
        if self.goal_space is None:
            self.batch.close()
            raise ConfigError(f"{config.env_id} has no x-y goal space to sample goals from")
        self.dt = float(self.batch.first.unwrapped.dt)
        self.config = config
        self.rng = rng

    @property
    def obs_dim(self) -> int:
        return int(self.batch.observation_space.shape[0])

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.batch.action_space.shape))

    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        """New episodes: observations ``(N, do)`` and goals ``(N, 2)``."""
        goals = self.goal_space.sample(self.rng, self.config.num_envs).astype(np.float32)
        seeds = [int(seed) for seed in self.rng.integers(2**31, size=self.config.num_envs)]
        return self.batch.reset(seeds), goals

    def close(self) -> None:
        self.batch.close()


class GCSACTrainer:
    """Runs goal-conditioned SAC; checkpoints and resumes; packages a :class:`GCSACSkill`.

    Args:
        config: the run's configuration.
        out_dir: package directory; checkpoints go to ``out_dir/checkpoint``, TensorBoard
            scalars to ``out_dir/tensorboard``.
        command: the command line that started the run, recorded in the manifest.

    Raises:
        ConfigError: a bad config, or observation entries the environment does not have.
    """

    def __init__(self, config: GCSACConfig, out_dir: Path | str, command: str = ""):
        config.validate()
        self.config = config
        self.out_dir = Path(out_dir)
        self.command = command
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.envs = _Envs(config, self.rng)
        try:
            self.policy_dims, self.xy_dims = split_observation(config, self.envs.obs_dim)
        except ConfigError:
            self.envs.close()
            raise
        self.learner = SACLearner(
            len(self.policy_dims) + 2, self.envs.action_dim, config.sac, config.seed
        )
        self.replay = ReplayBuffer(
            config.replay_capacity,
            {
                "obs": (len(self.policy_dims) + 2,),
                "next_obs": (len(self.policy_dims) + 2,),
                "actions": (self.envs.action_dim,),
                "rewards": (),
                "dones": (),
            },
        )
        self.steps_done = 0
        self.iteration = 0

    def _input(self, obs: np.ndarray, goals: np.ndarray) -> np.ndarray:
        return policy_input(obs, goals, list(self.policy_dims), list(self.xy_dims))

    def _distance(self, obs: np.ndarray, goals: np.ndarray) -> np.ndarray:
        return np.linalg.norm(obs[:, list(self.xy_dims)] - goals, axis=-1)

    # --- data ------------------------------------------------------------------------------
    def collect(self, deterministic: bool = False) -> tuple[dict[str, np.ndarray], dict]:
        """One episode in every environment with the current policy (its mean action when
        ``deterministic``).

        Returns:
            The transitions (one column per replay field, ``(n, ...)``) and the episodes'
            statistics: ``success_rate``, ``fall_rate``, ``episode_steps`` (mean policy steps),
            ``final_distance`` and ``normalized_distance`` (final over initial distance), and
            ``return`` (mean undiscounted return).
        """
        config = self.config
        obs, goals = self.envs.reset()
        count = config.num_envs
        start_distance = self._distance(obs, goals)
        distance = start_distance.copy()
        active = np.ones(count, bool)
        success = np.zeros(count, bool)
        fell = np.zeros(count, bool)
        returns = np.zeros(count)
        columns: dict[str, list[np.ndarray]] = {k: [] for k in self.replay.data}
        for step in range(config.episode_length):
            inputs = self._input(obs, goals)
            with torch.no_grad():
                x = torch.from_numpy(inputs)
                if deterministic:
                    actions = torch.tanh(self.learner.policy(x)[0])
                else:
                    actions = self.learner.policy.sample(x, self.learner.generator)[0]
            actions = actions.numpy()
            next_obs, _, terminated, _ = self.envs.batch.step(actions, active)
            next_distance = self._distance(next_obs, goals)
            rewards = dense_reward(
                distance,
                next_distance,
                terminated,
                self.envs.dt,
                config.healthy_reward,
                config.progress_weight,
            )
            dones, reached, ended = episode_ends(terminated, next_distance, step, config)
            for key, value in (
                ("obs", inputs),
                ("next_obs", self._input(next_obs, goals)),
                ("actions", actions),
                ("rewards", rewards),
                ("dones", dones),
            ):
                columns[key].append(value[active])
            returns[active] += rewards[active]
            success |= reached & active
            fell |= terminated & active
            distance = np.where(active, next_distance, distance)
            obs = np.where(active[:, None], next_obs, obs)
            active &= ~ended
            if not active.any():
                break
        data = {k: np.concatenate(v).astype(np.float32) for k, v in columns.items()}
        stats = {
            "success_rate": float(success.mean()),
            "fall_rate": float(fell.mean()),
            "episode_steps": len(data["rewards"]) / count,
            "final_distance": float(distance.mean()),
            "normalized_distance": float((distance / np.maximum(start_distance, 1e-6)).mean()),
            "return": float(returns.mean()),
        }
        return data, stats

    # --- updates ---------------------------------------------------------------------------
    def update(self, count: int) -> dict[str, float]:
        """``count`` SAC updates on uniform minibatches of the replay."""
        metrics: dict[str, float] = {}
        for _ in range(count):
            metrics = self.learner.update(self.replay.sample(self.rng, self.config.batch_size))
        metrics["sac_updates"] = float(count)
        return metrics

    def iterate(self) -> dict[str, float]:
        """Collect one episode per environment, then the updates it pays for."""
        import time

        started = time.perf_counter()
        fresh, metrics = self.collect()
        collected = time.perf_counter()
        self.replay.add(**fresh)
        new = len(fresh["rewards"])
        metrics["reward"] = float(fresh["rewards"].mean())
        metrics.update(self.update(max(1, round(self.config.sac_updates_per_step * new))))
        metrics["collect_seconds"] = collected - started
        metrics["update_seconds"] = time.perf_counter() - collected
        self.steps_done += new
        self.iteration += 1
        metrics["steps"] = float(self.steps_done)
        return metrics

    # --- the run ---------------------------------------------------------------------------
    def train(
        self,
        resume: bool = False,
        progress: bool = True,
        name: str = "gcsac-skill",
        version: str = "1.0.0",
    ) -> Path:
        """Trains to ``config.steps`` policy steps and writes the skill package.

        Args:
            resume: continue from ``out_dir/checkpoint`` if there is one (only ``steps`` may
                differ from the checkpoint's configuration).
            progress: show a progress bar.
            name: package name.
            version: package version.

        Raises:
            ConfigError: the checkpoint was made with another configuration, or the weights
                are not finite.
        """
        run = TrainingRun(
            self.config,
            self.out_dir,
            tag="gcsac",
            budget="steps",
            command=self.command,
            progress=progress,
            threads=self.config.torch_threads,
        )
        try:
            state = run.resume() if resume else None
            if state is not None:
                self.restore(state)
            with run.session(done=self.steps_done, log_step=self.iteration):
                while self.steps_done < self.config.steps:
                    self._train_iteration(run)
            run.save(self.state())
            evaluation = self.evaluate()
        finally:
            self.close()
        return self.package(run, evaluation, name=name, version=version)

    def _train_iteration(self, run: TrainingRun) -> None:
        """One :meth:`iterate`, logged, shown, and checkpointed every ``checkpoint_every``."""
        before = self.steps_done
        metrics = self.iterate()
        run.log(self.iteration, metrics)
        run.advance(
            self.steps_done - before,
            success=f"{metrics['success_rate']:.2f}",
            fall=f"{metrics['fall_rate']:.2f}",
            dist=f"{metrics['normalized_distance']:.2f}",
            ret=f"{metrics['return']:.1f}",
        )
        if self.iteration % self.config.checkpoint_every == 0:
            run.save(self.state())

    def evaluate(self) -> dict[str, float]:
        """The mean policy on ``eval_episodes`` goals (whole batches of ``num_envs``); the
        replay is not touched."""
        config = self.config
        if config.eval_episodes == 0:
            return {}
        rounds = -(-config.eval_episodes // config.num_envs)
        results = [self.collect(deterministic=True)[1] for _ in range(rounds)]
        return {
            f"eval_{key}": float(np.mean([r[key] for r in results]))
            for key in ("success_rate", "fall_rate", "normalized_distance", "final_distance")
        } | {"eval_episodes": rounds * config.num_envs}

    def close(self) -> None:
        """Stops the environment workers."""
        self.envs.close()

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds besides the config and the history."""
        replay, counters = self.replay.state()
        return {
            "learner": self.learner.state_dict(),
            "replay": replay,
            "replay_counters": counters,
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "steps_done": self.steps_done,
            "iteration": self.iteration,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continues from a checkpoint's :meth:`state`."""
        self.learner.load_state_dict(state["learner"])
        self.replay.restore(
            {k: v.numpy() if torch.is_tensor(v) else v for k, v in state["replay"].items()},
            state["replay_counters"],
        )
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.steps_done = int(state["steps_done"])
        self.iteration = int(state["iteration"])
        logger.info("resumed at iteration %d (%d steps)", self.iteration, self.steps_done)

    def make_skill(self) -> GCSACSkill:
        """The current policy as a :class:`GCSACSkill`."""
        env = self.envs.batch.first
        low, high = self.envs.goal_space.low, self.envs.goal_space.high
        skill_config = GCSACSkillConfig(
            policy_obs_indices=self.policy_dims,
            xy_indices=self.xy_dims,
            policy_hidden=tuple(self.config.sac.hidden),
            goal_extent=float(np.max(np.abs(np.concatenate([low, high])))),
        )
        return GCSACSkill(
            skill_config,
            copy.deepcopy(self.learner.policy),
            env.observation_space,
            env.action_space,
        )

    def package(
        self,
        run: TrainingRun,
        evaluation: dict[str, float],
        name: str = "gcsac-skill",
        version: str = "1.0.0",
    ) -> Path:
        """Writes the package (with the run's history) into ``out_dir``."""
        history = run.history
        last = history[-5:] if history else [{}]
        metrics = {
            "steps": self.steps_done,
            "iterations": self.iteration,
            "wall_seconds_this_session": round(run.seconds, 1),
            **{
                f"train_{key}": float(np.mean([m[key] for m in last])) if history else None
                for key in ("success_rate", "fall_rate", "normalized_distance", "return")
            },
            **evaluation,
        }
        path = run.package(
            self.make_skill(),
            name=name,
            version=version,
            description=(
                f"goal-conditioned SAC on {self.config.env_id} (dense distance reward), "
                "commanded by the x-y goal"
            ),
            metrics=metrics,
        )
        (path / "history.json").write_text(json.dumps(history) + "\n")
        return path


def split_observation(config: GCSACConfig, obs_dim: int) -> tuple[tuple[int, ...], tuple[int, int]]:
    """The observation entries the policy sees (``policy_obs_dims`` without x-y) and the x-y.

    Raises:
        ConfigError: an entry the observations do not have.
    """
    xy = tuple(int(i) for i in config.xy_dims)
    visible = tuple(config.policy_obs_dims or range(obs_dim))
    for name, dims in (("xy_dims", xy), ("policy_obs_dims", visible)):
        if max(dims) >= obs_dim or min(dims) < 0:
            raise ConfigError(
                f"{name} {dims} out of range for {config.env_id} observations of size {obs_dim}"
            )
    return tuple(i for i in visible if i not in xy), xy  # type: ignore[return-value]

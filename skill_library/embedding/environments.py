"""The environments the embedding trainer collects in, and the held-command segments its skill
dynamics is fitted to."""

from __future__ import annotations

from typing import Any

import numpy as np


class TaskEnvs:
    """``count`` copies of a multi-task env stepped in lockstep.

    Args:
        env_id: the env; its unwrapped env has ``num_tasks`` and takes ``options={"task": k}``
            at reset (and ``"joint_angles"`` for random starts, as ``hrl/ArmReach-v0`` does).
        count: number of copies.
        workers: workers stepping groups of the copies (an :class:`envs.batch.EnvBatch`).
        worker_backend: ``processes`` or ``ray``.
    """

    def __init__(
        self, env_id: str, count: int, workers: int = 0, worker_backend: str = "processes"
    ):
        from envs.batch import EnvBatch

        self.batch = EnvBatch(env_id, count, 10**9, workers, worker_backend=worker_backend)
        first = self.batch.first.unwrapped
        self.num_tasks = int(getattr(first, "num_tasks", 0))
        self.elbow_limit = getattr(getattr(first, "config", None), "elbow_limit", None)
        self.observation_space = self.batch.observation_space
        self.action_space = self.batch.action_space
        self.obs_dim = int(self.observation_space.shape[0])
        self.action_dim = int(self.action_space.shape[0])
        self.count = count

    def reset(self, tasks: np.ndarray, rng: np.random.Generator, random_start: float) -> np.ndarray:
        """Resets every copy to its task; returns ``(N, do)``."""
        seeds, options = [], []
        for task in tasks:
            option: dict[str, Any] = {"task": int(task)}
            if self.elbow_limit is not None and rng.uniform() < random_start:
                limit = 0.95 * float(self.elbow_limit)
                option["joint_angles"] = (rng.uniform(-np.pi, np.pi), rng.uniform(-limit, limit))
            options.append(option)
            seeds.append(int(rng.integers(2**31)))
        return self.batch.reset(seeds, options)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Steps every copy: ``actions (N, da)`` -> obs ``(N, do)``, rewards, terminated."""
        every = np.ones(self.count, bool)
        obs, rewards, terminated, _ = self.batch.step(np.asarray(actions), every, 1)
        return obs, rewards.astype(np.float32), terminated.astype(np.float32)

    def close(self) -> None:
        self.batch.close()


def held_command_segments(
    envs: TaskEnvs,
    skill: Any,
    config: Any,
    rng: np.random.Generator,
    planning_state: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """Runs ``skill`` (an :class:`EmbeddingSkill`) with commands held for
    ``config.hold_steps``: half the commands drawn from the task embeddings p(z | t), half
    uniformly over the command box.

    Returns:
        ``states (M, ds)``, ``commands (M, dz)``, ``next_states (M, ds)``: the planning
        state before and after each held command.
    """
    n, hold = config.num_envs, config.hold_steps
    per_episode = 10
    episodes = int(np.ceil(config.dynamics_segments / (n * per_episode)))
    bound = skill.config.command_bound
    means, stds = skill.embedding_means, skill.embedding_stds
    columns: dict[str, list[np.ndarray]] = {"states": [], "commands": [], "next_states": []}
    dims = list(planning_state)
    for _ in range(episodes):
        tasks = rng.integers(config.tasks, size=n)
        obs = envs.reset(tasks, rng, config.random_start)
        for _ in range(per_episode):
            from_task = rng.integers(config.tasks, size=n)
            noise = rng.normal(size=(n, means.shape[1]))
            embedded = means[from_task] + stds[from_task] * noise
            uniform = rng.uniform(-bound, bound, size=embedded.shape)
            pick = rng.uniform(size=(n, 1)) < 0.5
            commands = np.clip(np.where(pick, embedded, uniform), -bound, bound)
            commands = commands.astype(np.float32)
            start = obs[:, dims].copy()
            for _ in range(hold):
                obs, _, _ = envs.step(skill.act_batch(obs, commands))
            columns["states"].append(start)
            columns["commands"].append(commands)
            columns["next_states"].append(obs[:, dims].copy())
    return {k: np.concatenate(v).astype(np.float32) for k, v in columns.items()}

"""The environments DADS collects skill episodes in."""

from __future__ import annotations

import numpy as np

from skill_library.dads.config import DADSConfig


class SkillEnvs:
    """``num_envs`` environments stepped in lockstep at the policy's rate (an
    :class:`envs.batch.EnvBatch`, ``env_workers`` groups in worker processes), each one episode
    per iteration; an environment whose episode terminated (Ant: unhealthy torso) stays out
    until the next reset."""

    def __init__(self, config: DADSConfig, rng: np.random.Generator):
        import envs
        from envs.batch import EnvBatch

        horizon = config.episode_length * config.action_repeat + 1
        self.batch = EnvBatch(
            config.env_id,
            config.num_envs,
            horizon,
            config.env_workers,
            worker_backend=config.env_worker_backend,
            env_kwargs=None if config.terminate_on_fall else {"terminate_when_unhealthy": False},
        )
        self.goal_space = envs.goal_space(self.batch.first)
        self.config = config
        self.rng = rng
        self.obs = np.zeros((config.num_envs, *self.batch.observation_space.shape), np.float32)
        self.alive = np.ones(config.num_envs, bool)

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def action_dim(self) -> int:
        return int(np.prod(self.batch.action_space.shape))

    def reset(self) -> np.ndarray:
        layout = getattr(self.goal_space, "layout", None)
        options: list[dict | None] = [None] * self.config.num_envs
        if self.config.random_start and layout is not None:
            starts = self.goal_space.sample(self.rng, self.config.num_envs)
            options = [{"start_xy": tuple(start)} for start in starts]
        seeds = [int(seed) for seed in self.rng.integers(2**31, size=self.config.num_envs)]
        self.obs[:] = self.batch.reset(seeds, options)
        self.alive[:] = True
        return self.obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Holds each action for ``action_repeat`` control steps; returns next obs ``(N, do)``,
        dones ``(N,)`` (1 only where the episode terminated, so SAC does not bootstrap there; a
        time limit is not a termination) and fallen ``(N,)`` (the body is out of its healthy
        range: the termination itself, or with ``terminate_on_fall=False`` the environment's
        ``is_healthy``)."""
        obs, _, terminated, _ = self.batch.step(actions, self.alive, self.config.action_repeat)
        self.obs[self.alive] = obs[self.alive]
        dones = (terminated & self.alive).astype(np.float32)
        self.alive &= ~terminated
        if self.config.terminate_on_fall:
            fallen = dones > 0
        else:
            fallen = self.alive & ~self.batch.healthy()
        return self.obs.copy(), dones, fallen

    def close(self) -> None:
        self.batch.close()

"""A batch of environments stepped in lockstep, optionally split across worker processes.

Gymnasium's ``AsyncVectorEnv`` runs one process per environment; on a 2-core machine the pipe
round trip of every environment costs about as much as a MuJoCo step (Ant-v5 collected at ~700
steps/s with 8 processes against ~1300 steps/s in one process). :class:`EnvBatch` instead keeps
the first group of environments in the calling process and gives each worker process one group,
so one step costs one message per worker. Workers pin their BLAS pools to one thread (MuJoCo is
single-threaded) so they never compete with the trainer's pools.

With ``worker_backend="ray"`` the worker groups are Ray actors instead (one CPU each, BLAS pinned
to one thread), so a trainer's environments can step on the other machines of a Ray cluster
(``ray.init(address=...)`` before building the batch; without it a local Ray instance is started
and stopped with the batch). A lost actor ends the run with Ray's error: lockstep environments
cannot be replayed elsewhere.

The batch does no autoreset: an environment that ended stays ended until the next
:meth:`EnvBatch.reset`, and :meth:`EnvBatch.step` leaves inactive environments alone.
"""

from __future__ import annotations

import logging
import multiprocessing
from typing import Any

import numpy as np

from envs.registration import make_env

logger = logging.getLogger(__name__)


class _Group:
    """Environments of one process: reset, and step with an action held ``repeat`` times."""

    def __init__(
        self,
        env_id: str,
        count: int,
        max_episode_steps: int | None,
        env_kwargs: dict[str, Any] | None = None,
    ):
        kwargs = env_kwargs or {}
        self.envs = [
            make_env(env_id, max_episode_steps=max_episode_steps, **kwargs) for _ in range(count)
        ]

    def reset(self, seeds: list[int], options: list[dict | None]) -> np.ndarray:
        pairs = zip(self.envs, seeds, options, strict=True)
        return np.stack([env.reset(seed=seed, options=opt)[0] for env, seed, opt in pairs])

    def step(
        self, actions: np.ndarray, active: np.ndarray, repeat: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Returns obs ``(n, do)``, summed rewards ``(n,)``, terminated and truncated ``(n,)``;
        inactive environments return zeros and are not stepped."""
        count = len(self.envs)
        obs = np.zeros((count, *self.envs[0].observation_space.shape), np.float32)
        rewards = np.zeros(count)
        terminated = np.zeros(count, bool)
        truncated = np.zeros(count, bool)
        for index, env in enumerate(self.envs):
            if not active[index]:
                continue
            for _ in range(repeat):
                obs[index], reward, terminated[index], truncated[index], _ = env.step(
                    actions[index]
                )
                rewards[index] += reward
                if terminated[index] or truncated[index]:
                    break
        return obs, rewards, terminated, truncated

    def healthy(self) -> np.ndarray:
        """``(n,)`` the environments' own ``is_healthy`` (True where an env has none)."""
        return np.array([bool(getattr(env.unwrapped, "is_healthy", True)) for env in self.envs])

    def close(self) -> None:
        for env in self.envs:
            env.close()


class _PinnedGroup(_Group):
    """A group in a Ray actor: BLAS pinned to one thread before the environments are built."""

    def __init__(self, *group_args: Any):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        super().__init__(*group_args)


WORKER_BACKENDS = ("processes", "ray")
"""Where :class:`EnvBatch` runs its worker groups."""


def _worker(
    connection: Any,
    env_id: str,
    count: int,
    max_episode_steps: int | None,
    env_kwargs: dict[str, Any] | None,
) -> None:
    """A worker process's loop: one group of environments, one message per call."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # MuJoCo steps on one thread; BLAS must not take the trainer's cores
    group = _Group(env_id, count, max_episode_steps, env_kwargs)
    while True:
        command, payload = connection.recv()
        if command == "close":
            group.close()
            connection.close()
            return
        connection.send(getattr(group, command)(*payload))


class EnvBatch:
    """``count`` environments stepped in lockstep, ``workers`` groups of them in other processes.

    Args:
        env_id: any id :func:`envs.make_env` accepts.
        count: environments in the batch.
        max_episode_steps: each environment's time limit in control steps.
        workers: worker processes (0: every environment in this process). The environments are
            split into ``workers + 1`` groups as evenly as possible; this process steps the first
            while the workers step theirs.
        worker_backend: ``"processes"`` (spawned on this machine) or ``"ray"`` (Ray actors on
            the running Ray instance or cluster, or on one started for the batch).
        env_kwargs: keyword arguments of every environment's constructor (e.g. Ant's
            ``terminate_when_unhealthy``).

    Raises:
        ValueError: ``count < 1`` or ``workers < 0`` or more workers than environments allow,
            an unknown ``worker_backend``, or ``"ray"`` without Ray installed.
    """

    def __init__(
        self,
        env_id: str,
        count: int,
        max_episode_steps: int | None = None,
        workers: int = 0,
        worker_backend: str = "processes",
        env_kwargs: dict[str, Any] | None = None,
    ):
        if count < 1 or workers < 0 or workers >= count:
            raise ValueError(
                f"EnvBatch: need count >= 1 and 0 <= workers < count, got count={count}, "
                f"workers={workers}"
            )
        if worker_backend not in WORKER_BACKENDS:
            raise ValueError(
                f"EnvBatch: worker_backend must be one of {WORKER_BACKENDS}, got {worker_backend!r}"
            )
        sizes = [len(part) for part in np.array_split(np.arange(count), workers + 1)]
        self.bounds = np.cumsum([0, *sizes])
        self.local = _Group(env_id, sizes[0], max_episode_steps, env_kwargs)
        env = self.local.envs[0]
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.count = count
        self._connections = []
        self._processes = []
        self._actors: list[Any] = []
        self._ray: Any = None
        self._started_ray = False
        if worker_backend == "ray" and workers:
            self._start_actors(env_id, sizes[1:], max_episode_steps, env_kwargs)
            return
        context = multiprocessing.get_context("spawn")
        for size in sizes[1:]:
            parent, child = context.Pipe()
            process = context.Process(
                target=_worker,
                args=(child, env_id, size, max_episode_steps, env_kwargs),
                daemon=True,
            )
            process.start()
            child.close()
            self._connections.append(parent)
            self._processes.append(process)

    def _start_actors(
        self,
        env_id: str,
        sizes: list[int],
        max_episode_steps: int | None,
        env_kwargs: dict[str, Any] | None,
    ) -> None:
        """One Ray actor (one CPU) per worker group."""
        try:
            import ray
        except ImportError:
            raise ValueError(
                "EnvBatch: worker_backend='ray' needs Ray; pip install 'hrl-runtime[ray]'"
            ) from None
        self._ray = ray
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            self._started_ray = True
        group = ray.remote(num_cpus=1)(_PinnedGroup)
        self._actors = [group.remote(env_id, size, max_episode_steps, env_kwargs) for size in sizes]

    @property
    def first(self) -> Any:
        """The first environment (in this process): read its spaces and goal space from it."""
        return self.local.envs[0]

    def _call(self, method: str, *per_env: Any, shared: tuple = ()) -> list[Any]:
        """Calls ``method`` on every group, the workers' first; returns results in group order."""
        spans = zip(self.bounds[:-1], self.bounds[1:], strict=True)
        parts = [[arg[lo:hi] for arg in per_env] for lo, hi in spans]
        if self._actors:
            pending = [
                getattr(actor, method).remote(*part, *shared)
                for actor, part in zip(self._actors, parts[1:], strict=True)
            ]
            results = [getattr(self.local, method)(*parts[0], *shared)]
            return results + self._ray.get(pending)
        for connection, part in zip(self._connections, parts[1:], strict=True):
            connection.send((method, (*part, *shared)))
        results = [getattr(self.local, method)(*parts[0], *shared)]
        results.extend(connection.recv() for connection in self._connections)
        return results

    def reset(self, seeds: list[int], options: list[dict | None] | None = None) -> np.ndarray:
        """Resets every environment; returns observations ``(N, do)``."""
        options = options if options is not None else [None] * self.count
        return np.concatenate(self._call("reset", list(seeds), list(options))).astype(np.float32)

    def step(
        self, actions: np.ndarray, active: np.ndarray, repeat: int = 1
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Steps the active environments, each action held for up to ``repeat`` control steps
        (fewer when the episode ends).

        Args:
            actions: ``(N, da)``.
            active: ``(N,)`` bool; inactive environments are not stepped and return zeros.
            repeat: control steps per action.

        Returns:
            obs ``(N, do)``, rewards ``(N,)`` (summed over the repeats), terminated ``(N,)`` and
            truncated ``(N,)``.
        """
        results = self._call("step", np.asarray(actions), np.asarray(active), shared=(repeat,))
        return tuple(np.concatenate(column) for column in zip(*results, strict=True))  # type: ignore[return-value]

    def healthy(self) -> np.ndarray:
        """``(N,)`` each environment's own ``is_healthy`` (Ant: the torso in its healthy
        range), True for environments without one; for bodies that keep stepping after a fall
        (``terminate_when_unhealthy=False``)."""
        return np.concatenate(self._call("healthy"))

    def close(self) -> None:
        """Closes the environments and stops the workers."""
        for connection in self._connections:
            try:
                connection.send(("close", ()))
            except (BrokenPipeError, OSError):
                logger.warning("an environment worker had already stopped")
        for process in self._processes:
            process.join(timeout=5)
        self._connections, self._processes = [], []
        if self._actors:
            self._ray.get([actor.close.remote() for actor in self._actors])
            for actor in self._actors:
                self._ray.kill(actor)
            self._actors = []
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False
        self.local.close()

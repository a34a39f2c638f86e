"""Gymnasium registration and :func:`make_env`, the one entry point for making environments.

Every env from :func:`make_env` has a flat float32 ``Box`` observation space. Envs whose
observation holds the agent's x-y expose ``xy_indices`` and a ``goal_space`` (read them through
wrappers with :func:`envs.goals.xy_indices` and :func:`envs.goals.goal_space`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from gymnasium.wrappers import FlattenObservation

from envs.goals import GoalSpace

POINT_ARENA_ID = "hrl/PointArena-v0"
POINT_MAZE_ID = "hrl/PointMaze-v0"
POINT_MAZE_FAR_ID = "hrl/PointMazeFar-v0"
ARM_REACH_ID = "hrl/ArmReach-v0"
ANT_ID = "Ant-v5"
DM_CONTROL_PREFIX = "dm_control/"

_OUR_ENVS: dict[str, tuple[str, int]] = {
    # id: (layout name, max_episode_steps)
    POINT_ARENA_ID: ("arena", 1000),
    POINT_MAZE_ID: ("maze", 2000),
}

_TASK_ENVS: dict[str, tuple[str, int]] = {
    # id: (entry point, max_episode_steps)
    POINT_MAZE_FAR_ID: ("envs.far_goal:make_point_maze_far", 3000),
    ARM_REACH_ID: ("envs.arm:ArmReachEnv", 200),
}

ANT_GOAL_DISTANCE = (3.0, 8.0)
"""Metres from the start of Ant's random goals."""

_SUCCESS_RADIUS: dict[str, float] = {ANT_ID: 1.0, ARM_REACH_ID: 0.1}
"""Goal-reaching radii other than the default, metres (Ant's torso is ~0.5 m across; the arm's
fingertip within 0.1 m)."""
DEFAULT_SUCCESS_RADIUS = 0.5
"""Goal-reaching radius of the point masses and every env not in ``_SUCCESS_RADIUS``, metres."""

_SUPPORTED_IDS: tuple[str, ...] = (
    POINT_ARENA_ID,
    POINT_MAZE_ID,
    POINT_MAZE_FAR_ID,
    ARM_REACH_ID,
    ANT_ID,
    "dm_control/point_mass-easy-v0",
    "dm_control/reacher-easy-v0",
    "dm_control/quadruped-walk-v0",
)


def _register() -> None:
    for env_id, (layout, max_steps) in _OUR_ENVS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="envs.point_mass:PointMassEnv",
                kwargs={"layout": layout},
                max_episode_steps=max_steps,
            )
    for env_id, (entry_point, max_steps) in _TASK_ENVS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, max_episode_steps=max_steps)


_register()


def env_ids() -> list[str]:
    """The environment ids the project supports and tests.

    Returns:
        Ids accepted by :func:`make_env`; any other dm_control suite id
        ``"dm_control/<domain>-<task>-v0"`` also works, without x-y information unless its domain
        is listed here.
    """
    return list(_SUPPORTED_IDS)


# ------------------------------------------------------------------------------------ wrappers


class PlanarAttributes(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Declares where the agent's x-y sits in the observation and which x-y goals make sense.

    Args:
        env: The env (its observations are not changed).
        xy_indices: Observation indices of x and y.
        goal_space: Reachable x-y goals.
    """

    def __init__(
        self, env: gymnasium.Env, xy_indices: tuple[int, int], goal_space: GoalSpace
    ) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(
            self, xy_indices=xy_indices, goal_space=goal_space
        )
        gymnasium.Wrapper.__init__(self, env)
        self.xy_indices = xy_indices
        self.goal_space = goal_space


class Float32Observation(gymnasium.ObservationWrapper, gymnasium.utils.RecordConstructorArgs):
    """Casts a ``Box`` observation (and its bounds) to float32.

    Args:
        env: An env with a ``Box`` observation space.
    """

    def __init__(self, env: gymnasium.Env) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self)
        gymnasium.ObservationWrapper.__init__(self, env)
        base = env.observation_space
        if not isinstance(base, gymnasium.spaces.Box):
            raise TypeError(f"Float32Observation needs a Box observation space, got {base}")
        self.observation_space = gymnasium.spaces.Box(
            low=base.low.astype(np.float32), high=base.high.astype(np.float32), dtype=np.float32
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Casts to float32.

        Args:
            observation: The env's observation.

        Returns:
            The same values as float32.
        """
        return np.asarray(observation, dtype=np.float32)


class AppendPhysicsXY(gymnasium.ObservationWrapper, gymnasium.utils.RecordConstructorArgs):
    """Appends an x-y read from a dm_control env's physics to its flat observation.

    The x-y are the last two observation entries, and ``xy_indices`` points at them.

    Args:
        env: A flat-``Box`` observation env made by shimmy from a dm_control suite task.
        source: Where to read the x-y: ``("xpos", body_name)`` for a body origin or
            ``("geom_xpos", geom_name)`` for a geom centre.
        goal_space: Reachable x-y goals.
    """

    def __init__(self, env: gymnasium.Env, source: tuple[str, str], goal_space: GoalSpace) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, source=source, goal_space=goal_space)
        gymnasium.ObservationWrapper.__init__(self, env)
        base = env.observation_space
        if not isinstance(base, gymnasium.spaces.Box) or len(base.shape) != 1:
            raise TypeError(f"AppendPhysicsXY needs a flat Box observation space, got {base}")
        # shimmy's DmControlCompatibilityV0 keeps the dm_control environment in `_env`.
        physics = env.unwrapped._env.physics
        array_name, element = source
        # A named view row aliases the live physics data, so it reads the current state.
        self._xyz = getattr(physics.named.data, array_name)[element]
        n = base.shape[0]
        self.observation_space = gymnasium.spaces.Box(
            low=np.concatenate([base.low, np.full(2, -np.inf, dtype=base.dtype)]),
            high=np.concatenate([base.high, np.full(2, np.inf, dtype=base.dtype)]),
            dtype=base.dtype,
        )
        self.xy_indices = (n, n + 1)
        self.goal_space = goal_space

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Appends the physics x-y.

        Args:
            observation: ``(n,)`` flat observation.

        Returns:
            ``(n + 2,)`` observation.
        """
        return np.concatenate([observation, np.asarray(self._xyz[:2], dtype=observation.dtype)])


@dataclass(frozen=True)
class _DmControlPlanar:
    """How to find the x-y of a dm_control domain."""

    goal_space: GoalSpace
    """Reachable x-y goals, metres."""
    source: tuple[str, str] | None = None
    """Physics array and element to append as x-y; None when the observation starts with x-y."""


_DM_CONTROL_PLANAR: dict[str, _DmControlPlanar] = {
    # point_mass: observation "position" (sorted first) is x-y; the arena walls are at +-0.3 m.
    "point_mass": _DmControlPlanar(GoalSpace.box((-0.25, -0.25), (0.25, 0.25))),
    # reacher: the fingertip; the two links reach 0.22 m from the base.
    "reacher": _DmControlPlanar(GoalSpace.box((-0.2, -0.2), (0.2, 0.2)), ("geom_xpos", "finger")),
    # quadruped: observations are egocentric; the torso x-y is read from the physics.
    "quadruped": _DmControlPlanar(GoalSpace.box((-10.0, -10.0), (10.0, 10.0)), ("xpos", "torso")),
}


# ----------------------------------------------------------------------------------- make_env


def make_env(
    env_id: str,
    *,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
    **kwargs: Any,
) -> gymnasium.Env:
    """Makes an environment by id, with x-y information where the env has it.

    Args:
        env_id: One of :func:`env_ids`, or any ``"dm_control/<domain>-<task>-v0"`` suite id.
        max_episode_steps: Overrides the registered episode length.
        render_mode: Gymnasium render mode, e.g. ``"rgb_array"``.
        **kwargs: Passed to the env constructor (for our ids: ``layout``, ``config``).

    Returns:
        The env, with a flat float32 ``Box`` observation space.

    Raises:
        ValueError: If the id is not supported.
    """
    make_kwargs: dict[str, Any] = dict(kwargs)
    if max_episode_steps is not None:
        make_kwargs["max_episode_steps"] = max_episode_steps
    if render_mode is not None:
        make_kwargs["render_mode"] = render_mode

    if env_id in _OUR_ENVS or env_id in _TASK_ENVS:
        return gymnasium.make(env_id, **make_kwargs)

    if env_id == ANT_ID:
        make_kwargs.setdefault("exclude_current_positions_from_observation", False)
        if make_kwargs["exclude_current_positions_from_observation"]:
            raise ValueError(
                "make_env('Ant-v5'): exclude_current_positions_from_observation must be False so "
                "that obs[0:2] is the torso x-y; drop that argument."
            )
        env = Float32Observation(gymnasium.make(ANT_ID, **make_kwargs))
        space = GoalSpace.box((-10.0, -10.0), (10.0, 10.0), start_distance=ANT_GOAL_DISTANCE)
        return PlanarAttributes(env, (0, 1), space)

    if env_id.startswith(DM_CONTROL_PREFIX):
        import shimmy  # noqa: F401  (importing shimmy registers the dm_control ids)

        if env_id in gymnasium.registry:
            return _make_dm_control(env_id, make_kwargs)

    raise ValueError(
        f"make_env: unknown environment id {env_id!r}. Known ids: {env_ids()}, or any dm_control "
        "suite task as 'dm_control/<domain>-<task>-v0' (e.g. 'dm_control/cheetah-run-v0'). "
        "For other Gymnasium envs call gymnasium.make directly, or add the id to "
        "envs/registration.py."
    )


def _make_dm_control(env_id: str, make_kwargs: dict[str, Any]) -> gymnasium.Env:
    env: gymnasium.Env = gymnasium.make(env_id, **make_kwargs)
    if isinstance(env.observation_space, gymnasium.spaces.Dict):
        # gymnasium sorts Dict keys, so e.g. point_mass flattens to [position, velocity].
        env = FlattenObservation(env)
    domain = env_id[len(DM_CONTROL_PREFIX) :].split("-")[0]
    planar = _DM_CONTROL_PLANAR.get(domain)
    if planar is not None and planar.source is not None:
        env = AppendPhysicsXY(env, planar.source, planar.goal_space)
    env = Float32Observation(env)
    if planar is not None and planar.source is None:
        env = PlanarAttributes(env, (0, 1), planar.goal_space)
    return env


def episode_steps(env_id: str) -> int | None:
    """The registered episode length of an environment, in control steps.

    Goal following gives each goal this budget by default: the time limit the environment
    declares for one task (1000 steps = 10 s in ``hrl/PointArena-v0``, 2000 = 20 s in
    ``hrl/PointMaze-v0``, whose random goals can be 30 m of corridor apart).

    Args:
        env_id: Any id :func:`make_env` accepts.

    Returns:
        The ``max_episode_steps`` of the id's registration, or None when it has none or the id
        is unknown.
    """
    if env_id in _OUR_ENVS:
        return _OUR_ENVS[env_id][1]
    if env_id in _TASK_ENVS:
        return _TASK_ENVS[env_id][1]
    if env_id.startswith(DM_CONTROL_PREFIX):
        import shimmy  # noqa: F401  (importing shimmy registers the dm_control ids)
    try:
        return gymnasium.spec(env_id).max_episode_steps
    except gymnasium.error.Error:
        return None


def success_radius(env_id: str) -> float:
    """The distance, metres, within which goal following counts a goal of ``env_id`` as
    reached by default: 1.0 for ``Ant-v5``, 0.1 for ``hrl/ArmReach-v0``, 0.5 otherwise."""
    return _SUCCESS_RADIUS.get(env_id, DEFAULT_SUCCESS_RADIUS)

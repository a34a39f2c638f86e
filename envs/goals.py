"""x-y goal spaces, their lookup through wrappers, and the goal-following task wrapper."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium
import numpy as np

from envs.layout import MazeLayout

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class GoalSpace:
    """The x-y goals an environment can be asked to reach.

    ``low`` and ``high`` are stored as read-only float64 ``(2,)`` arrays.
    """

    low: np.ndarray
    """``(2,)`` lower x-y corner, metres."""
    high: np.ndarray
    """``(2,)`` upper x-y corner, metres."""
    layout: MazeLayout | None = None
    """If set, goals must also lie in the layout's free space (not inside a wall)."""
    sample_margin: float = 0.3
    """Clearance from walls of sampled goals, metres (only used with a layout)."""
    start_distance: tuple[float, float] | None = None
    """If set, sampled goals lie this many metres (min, max) from the start pose's x-y, the
    origin: each goal is a task from the start (Ant: 3-8 m), and goal following attempts each
    one from a reset."""

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.shape != (2,) or not np.isfinite(value).all():
                raise ValueError(
                    f"GoalSpace.{name} must be a finite (2,) x-y corner, got {getattr(self, name)}"
                )
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        if not np.all(self.low < self.high):
            raise ValueError(
                f"GoalSpace: low {self.low.tolist()} must be below high {self.high.tolist()} "
                "in both x and y."
            )
        if self.start_distance is not None:
            near, far = (float(v) for v in self.start_distance)
            reach = float(np.min(np.abs(np.concatenate([self.low, self.high]))))
            if not 0 <= near < far <= reach:
                raise ValueError(
                    f"GoalSpace.start_distance {self.start_distance} must be (min, max) metres "
                    f"with 0 <= min < max <= {reach:g} (the box around the origin)"
                )
            object.__setattr__(self, "start_distance", (near, far))

    @classmethod
    def for_layout(cls, layout: MazeLayout, sample_margin: float = 0.3) -> GoalSpace:
        """The free space of a maze layout.

        Args:
            layout: The maze.
            sample_margin: Clearance from walls of sampled goals, metres.

        Returns:
            A goal space bounded by ``layout.bounds`` that rejects points inside walls.
        """
        low, high = layout.bounds
        return cls(low=low, high=high, layout=layout, sample_margin=sample_margin)

    @classmethod
    def box(
        cls,
        low: Sequence[float],
        high: Sequence[float],
        start_distance: tuple[float, float] | None = None,
    ) -> GoalSpace:
        """An axis-aligned box of goals with no walls.

        Args:
            low: ``(2,)`` lower corner, metres.
            high: ``(2,)`` upper corner, metres.
            start_distance: ``(min, max)`` metres from the origin of sampled goals (None:
                uniform over the box).

        Returns:
            The goal space.
        """
        return cls(low=np.asarray(low), high=np.asarray(high), start_distance=start_distance)

    def why_not(self, xy: Sequence[float] | np.ndarray) -> str | None:
        """Why a point is not a valid goal.

        Args:
            xy: ``(2,)`` candidate goal, metres.

        Returns:
            None if the point is a valid goal, else a one-line reason.
        """
        point = np.asarray(xy, dtype=np.float64)
        if point.shape != (2,):
            return f"goal must be an (x, y) pair of shape (2,), got shape {point.shape}"
        if not np.isfinite(point).all():
            return f"goal {point.tolist()} is not finite"
        if np.any(point < self.low) or np.any(point > self.high):
            return (
                f"goal {point.round(3).tolist()} is outside the bounds "
                f"[{self.low.tolist()}, {self.high.tolist()}]"
            )
        if self.layout is not None and not self.layout.is_free(point):
            r, c = self.layout.cell_of(point)
            return (
                f"goal {point.round(3).tolist()} is inside a wall of layout {self.layout.name} "
                f"(cell row {r}, col {c})"
            )
        return None

    def contains(self, xy: Sequence[float] | np.ndarray) -> bool:
        """Whether a point is a valid goal (see :meth:`why_not`).

        Args:
            xy: ``(2,)`` candidate goal, metres.

        Returns:
            True if valid.
        """
        return self.why_not(xy) is None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Samples goals uniformly over the reachable goal space.

        Args:
            rng: Random generator (a legacy ``np.random.RandomState`` also works).
            n: Number of goals.

        Returns:
            ``(n, 2)`` goals, metres; ``sample_margin`` from walls when there is a layout,
            ``start_distance`` from the origin when that is set.
        """
        if self.start_distance is not None:
            # Uniform over the annulus's area: radius from the square root of a uniform draw.
            near, far = self.start_distance
            radius = np.sqrt(rng.uniform(near**2, far**2, size=n))
            angle = rng.uniform(-np.pi, np.pi, size=n)
            return np.stack([radius * np.cos(angle), radius * np.sin(angle)], -1)
        if self.layout is None:
            return rng.uniform(self.low, self.high, size=(n, 2))
        points = self.layout.sample_free(rng, n, margin=self.sample_margin)
        return np.clip(points, self.low, self.high)


# ---------------------------------------------------------------------------- wrapper lookups


def xy_indices(env: gymnasium.Env) -> tuple[int, int] | None:
    """The observation indices of the agent's x-y, looking through wrappers.

    Args:
        env: Any Gymnasium env, wrapped or not.

    Returns:
        ``(ix, iy)``, or None if the env does not declare them.
    """
    try:
        indices = env.get_wrapper_attr("xy_indices")
    except AttributeError:
        return None
    return None if indices is None else (int(indices[0]), int(indices[1]))


def goal_space(env: gymnasium.Env) -> GoalSpace | None:
    """The env's x-y goal space, looking through wrappers.

    Args:
        env: Any Gymnasium env, wrapped or not.

    Returns:
        The goal space, or None if the env does not declare one.
    """
    return _declared_goal_space(env)


def _declared_goal_space(env: gymnasium.Env) -> GoalSpace | None:
    # GoalFollowing's ``goal_space`` argument shadows :func:`goal_space`, so it calls this.
    try:
        space = env.get_wrapper_attr("goal_space")
    except AttributeError:
        return None
    return space if isinstance(space, GoalSpace) else None


RewardKind = Literal["dense", "sparse"]


class GoalFollowing(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Adds an x-y goal-reaching task to an env that exposes ``xy_indices`` and a goal space.

    ``info`` gains ``goal`` ``(2,)``, ``distance`` (metres, from the x-y in the observation to the
    goal) and ``success`` (``distance <= success_radius``).

    Args:
        env: The env; its observation must be a ``Box`` holding x-y at ``xy_indices``.
        goal_space: Goals allowed; default: the env's own goal space (``envs.goal_space(env)``).
        success_radius: Distance counted as reaching the goal, metres.
        reward: ``"dense"``: ``-distance``; ``"sparse"``: 1.0 on success else 0.0.
        terminate_on_success: End the episode (``terminated=True``) on success.
        goal_in_obs: Append the goal ``(2,)`` to the observation (widens the observation space).

    Raises:
        ValueError: If the env has no x-y in its observations or no goal space is known, or an
            option is invalid.
    """

    def __init__(
        self,
        env: gymnasium.Env,
        goal_space: GoalSpace | None = None,
        success_radius: float = 0.5,
        reward: RewardKind = "dense",
        terminate_on_success: bool = False,
        goal_in_obs: bool = False,
    ) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(
            self,
            goal_space=goal_space,
            success_radius=success_radius,
            reward=reward,
            terminate_on_success=terminate_on_success,
            goal_in_obs=goal_in_obs,
        )
        gymnasium.Wrapper.__init__(self, env)
        indices = xy_indices(env)
        if indices is None:
            raise ValueError(
                f"GoalFollowing: {env} does not expose xy_indices, so the x-y position cannot be "
                "read from its observations; make it with envs.make_env or give the env an "
                "xy_indices attribute."
            )
        space = goal_space if goal_space is not None else _declared_goal_space(env)
        if space is None:
            raise ValueError(
                f"GoalFollowing: no goal space known for {env}; pass goal_space=GoalSpace.box(...)."
            )
        if reward not in ("dense", "sparse"):
            raise ValueError(f"GoalFollowing: reward must be 'dense' or 'sparse', got {reward!r}")
        if not success_radius > 0:
            raise ValueError(f"GoalFollowing: success_radius must be > 0, got {success_radius}")
        self.xy_indices: tuple[int, int] = (int(indices[0]), int(indices[1]))
        self.goal_space = space
        self.success_radius = float(success_radius)
        self.reward_kind: RewardKind = reward
        self.terminate_on_success = terminate_on_success
        self.goal_in_obs = goal_in_obs
        self._goal = np.zeros(2)
        if goal_in_obs:
            base = env.observation_space
            if not isinstance(base, gymnasium.spaces.Box) or len(base.shape) != 1:
                raise ValueError(
                    f"GoalFollowing: goal_in_obs needs a flat Box observation space, got {base}"
                )
            self.observation_space = gymnasium.spaces.Box(
                low=np.concatenate([base.low, space.low.astype(base.dtype)]),
                high=np.concatenate([base.high, space.high.astype(base.dtype)]),
                dtype=base.dtype,
            )

    @property
    def goal(self) -> np.ndarray:
        """The current goal, ``(2,)`` metres (a copy)."""
        return self._goal.copy()

    def set_goal(self, xy: Sequence[float] | np.ndarray) -> None:
        """Sets the goal.

        Args:
            xy: ``(2,)`` goal, metres.

        Raises:
            ValueError: If the goal is not in the goal space (the message says why).
        """
        reason = self.goal_space.why_not(xy)
        if reason is not None:
            raise ValueError(f"GoalFollowing.set_goal: {reason}.")
        self._goal = np.asarray(xy, dtype=np.float64).copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets the env and picks a goal.

        Args:
            seed: Seed for the env's ``np_random``, which also samples the goal.
            options: ``{"goal": (x, y)}`` fixes the goal; every other key goes to the env.

        Returns:
            ``(obs, info)`` with the goal fields in ``info``.
        """
        options = dict(options or {})
        goal = options.pop("goal", None)
        obs, info = self.env.reset(seed=seed, options=options or None)
        if goal is not None:
            self.set_goal(goal)
        else:
            self._goal = self._sample_goal_away_from(self._xy(obs))
        distance = self._distance(obs)
        return self._observe(obs), self._add_info(info, distance)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Steps the env and scores the step against the goal.

        Args:
            action: The env's action.

        Returns:
            ``(obs, reward, terminated, truncated, info)``.
        """
        obs, _, terminated, truncated, info = self.env.step(action)
        distance = self._distance(obs)
        success = distance <= self.success_radius
        if self.reward_kind == "dense":
            reward = -distance
        else:
            reward = 1.0 if success else 0.0
        terminated = bool(terminated or (self.terminate_on_success and success))
        return (
            self._observe(obs),
            float(reward),
            terminated,
            truncated,
            self._add_info(info, distance),
        )

    def _sample_goal_away_from(self, xy: np.ndarray) -> np.ndarray:
        # A goal sampled already within the success radius makes a degenerate episode: resample
        # a few times (deterministically, from the env's generator).
        for _ in range(100):
            goal = self.goal_space.sample(self.env.np_random, 1)[0]
            if np.linalg.norm(goal - xy) > self.success_radius:
                return goal
        logger.warning("GoalFollowing: every sampled goal was within the success radius")
        return goal

    def _xy(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(obs, dtype=np.float64)[list(self.xy_indices)]

    def _distance(self, obs: np.ndarray) -> float:
        return float(np.linalg.norm(self._xy(obs) - self._goal))

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        if not self.goal_in_obs:
            return obs
        return np.concatenate([obs, self._goal.astype(obs.dtype)])

    def _add_info(self, info: dict[str, Any], distance: float) -> dict[str, Any]:
        return {
            **info,
            "goal": self._goal.copy(),
            "distance": distance,
            "success": bool(distance <= self.success_radius),
        }

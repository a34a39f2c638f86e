"""What the policy server's ``init`` builds: the skill, its high level and the asynchronous loop
around them, from a request whose every field is checked first (:mod:`.requests`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime import checks
from hrl_runtime.errors import ConfigError, HrlError
from hrl_runtime.registry import load_skill
from hrl_runtime.serving import requests
from hrl_runtime.serving.access import SkillAllowList
from hrl_runtime.serving.requests import RequestError, checked, field

MAX_SAFE_STOP_AFTER = 1_000_000
"""Largest ``safe_stop_after`` (consecutive faulty ticks before the safe stop)."""
MAX_PLAN_AGE_S = 3600.0
"""Largest ``max_plan_age_s``."""


@dataclass(frozen=True)
class SessionFields:
    """The checked fields of an ``init`` request (see the server's schema)."""

    skill_ref: str
    """The skill as the request (or the server's default) named it."""
    source: str | Path
    """What is loaded: the ref, or the package directory the allow-list pinned."""
    planner: str
    goals: np.ndarray
    """``(N, 2)`` goals, metres (checked against the arena once the skill is loaded)."""
    xy: tuple[int, int]
    radius: float
    steps_per_goal: int
    seed: int
    fallback: str
    safe_stop_after: int
    max_plan_age_s: float
    mppi: dict[str, Any]


def init_fields(request: dict[str, Any], skills: SkillAllowList, default_planner: str):
    """The fields of an ``init`` request, each checked (the skill is not loaded yet).

    Args:
        request: the ``init`` request.
        skills: what the server may load; the named skill (or the server's default) goes
            through it first.

    Raises:
        RequestError: ``forbidden`` (a skill outside the allow-list, or a path), ``bad_field``
            or ``non_finite`` naming the first bad field.
    """
    from planners import MPPIConfig

    named = field(request, "skill", str, None)
    source = skills.resolve(named)
    skill_ref = named if named is not None else str(skills.default)
    xy = field(request, "xy_indices", list, [0, 1])
    if len(xy) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in xy):
        raise RequestError(
            "bad_field", f"field 'xy_indices' must be two integers, got {checks.shorten(xy)}"
        )
    return SessionFields(
        skill_ref=skill_ref,
        source=source,
        planner=field(request, "planner", str, default_planner),
        goals=requests.goals(field(request, "goals", list)),
        xy=(xy[0], xy[1]),
        radius=checked(
            checks.positive,
            field(request, "radius", (int, float), 0.5),
            "radius",
            high=checks.MAX_MAGNITUDE,
            fix="the radius is the goal tolerance in metres, > 0",
        ),
        steps_per_goal=checked(
            checks.count,
            field(request, "steps_per_goal", int, 1000),
            "steps_per_goal",
            checks.MAX_STEPS,
        ),
        seed=checked(checks.seed, field(request, "seed", int, 0), "seed"),
        fallback=field(request, "fallback", str, "hold"),
        safe_stop_after=checked(
            checks.count,
            field(request, "safe_stop_after", int, 10),
            "safe_stop_after",
            MAX_SAFE_STOP_AFTER,
        ),
        max_plan_age_s=checked(
            checks.positive,
            field(request, "max_plan_age_s", (int, float), 0.25),
            "max_plan_age_s",
            high=MAX_PLAN_AGE_S,
            fix=f"use seconds in (0, {MAX_PLAN_AGE_S:g}]",
        ),
        mppi=requests.mppi_fields(field(request, "mppi", dict, {}), MPPIConfig),
    )


class Session:
    """One skill session: ``init`` builds it, ``reset`` starts episodes, ``close`` ends it.

    Args:
        request: the ``init`` request.
        config: the server's :class:`~hrl_runtime.serving.server.ServerConfig`.
        skills: what ``init`` may load (the server's allow-list).

    Attributes:
        arena_low, arena_high: ``(2,)`` x-y bounds goals must lie in: the skill's observation
            bounds at ``xy_indices`` (±MAX_MAGNITUDE where those are infinite).
        latencies: seconds from the receipt of each control request to its reply.

    Raises:
        RequestError: ``forbidden`` (a skill outside the allow-list), ``bad_field``/``non_finite``
            (a field), ``init_failed`` (the skill or the planner could not be built).
    """

    def __init__(self, request: dict[str, Any], config: Any, skills: SkillAllowList):
        from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig
        from hrl_runtime.safety import SafetyConfig
        from planners import MPPIConfig, SequenceConfig

        given = init_fields(request, skills, config.planner)
        try:
            loop_config = AsyncLoopConfig(
                control_period_s=config.control_period_s,
                max_plan_age_s=given.max_plan_age_s,
                safety=SafetyConfig(fallback=given.fallback, safe_stop_after=given.safe_stop_after),
                control_rt_priority=None,  # the client's loop owns the timing
                gc_disable=False,
                planner_threads=config.planner_threads,
                planner_nice=config.planner_nice,
            )
            loop_config.validate()
            mppi = replace(MPPIConfig(seed=given.seed), **given.mppi)
            mppi.validate()
        except (ValueError, TypeError, ConfigError) as error:
            raise RequestError("bad_field", str(error)) from None
        skill = self._load(given.source)
        observation_dim = int(np.prod(skill.observation_space.shape))
        if max(given.xy) >= observation_dim or min(given.xy) < 0:
            raise RequestError(
                "bad_field",
                f"field 'xy_indices' {list(given.xy)} is out of range for the skill's "
                f"{observation_dim} observation entries; use indices 0..{observation_dim - 1}",
            )
        space = skill.observation_space
        bound = checks.MAX_MAGNITUDE
        self.arena_low = np.maximum(np.asarray(space.low, np.float64)[list(given.xy)], -bound)
        self.arena_high = np.minimum(np.asarray(space.high, np.float64)[list(given.xy)], bound)
        goals = requests.inside(given.goals, self.arena_low, self.arena_high)
        self.sequence_config = SequenceConfig(given.radius, given.steps_per_goal)
        self.high_level = self._high_level(given, skill, goals, mppi)
        self.skill, self.skill_ref, self.planner_name = skill, given.skill_ref, given.planner
        self.xy = given.xy
        self.loop = AsyncControlLoop(skill, self.high_level, loop_config)
        self.observation_dim = observation_dim
        self.started = False
        self.last_obs: np.ndarray | None = None
        self.latencies: list[float] = []
        self.deadline_misses = 0

    @staticmethod
    def _load(source: str | Path):
        try:
            return load_skill(source)
        except (HrlError, ValueError) as error:
            message = f"{type(error).__name__}: {error}"
            raise RequestError("init_failed", message) from None

    def _high_level(self, given: SessionFields, skill, goals: np.ndarray, mppi):
        from planners import build_goal_follower

        try:
            return build_goal_follower(
                given.planner, skill, goals, given.xy, self.sequence_config, given.seed, mppi
            )
        except (HrlError, ValueError) as error:
            raise RequestError("init_failed", f"{type(error).__name__}: {error}") from None

    def set_goals(self, goals: np.ndarray) -> None:
        """Makes ``goals: (N, 2)`` (checked against the arena) the next episode's goals.

        The goal sequence keeps its planner and its planner thread: the new goals reach the
        planner with the episode at :meth:`AsyncControlLoop.reset`, so nothing waits for a plan
        in progress.

        Raises:
            RequestError: ``bad_field`` (outside the arena, or a high level without goals).
        """
        from planners import GoalSequence

        if not isinstance(self.high_level, GoalSequence):
            raise RequestError("bad_field", "this session's high level does not take goals")
        self.high_level.goals = requests.inside(goals, self.arena_low, self.arena_high)

    def close(self) -> None:
        self.loop.close()

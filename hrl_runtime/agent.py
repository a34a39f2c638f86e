"""The hierarchical agent: a high level choosing commands for a skill."""

from __future__ import annotations

import time

import numpy as np

from hrl_runtime.high_level import HighLevel
from hrl_runtime.skill import Skill


class HierarchicalAgent:
    """Runs a high level and a skill together, one control step at a time.

    Every ``replan_every`` steps the high level is given the observation and optimizes; every step
    it is asked for the command at that step, and the skill turns ``(obs, command)`` into an
    action.

    Args:
        high_level: chooses commands.
        skill: executes them.
        replan_every: control steps between optimizations; defaults to ``skill.hold_steps``.

    Attributes:
        last_planner_latency_s: seconds the last step spent in ``set_state`` + ``optimize``
            (NaN on steps without replanning).
        last_command: the command used at the last step, ``(dc,)``.
    """

    def __init__(self, high_level: HighLevel, skill: Skill, replan_every: int | None = None):
        self.high_level = high_level
        self.skill = skill
        self.replan_every = int(replan_every or skill.hold_steps)
        if self.replan_every < 1:
            raise ValueError(f"replan_every must be >= 1, got {replan_every}")
        self.last_planner_latency_s = float("nan")
        self.last_command: np.ndarray | None = None
        self._step = 0

    def reset(self, obs: np.ndarray) -> None:
        """Starts an episode from ``obs: (do,)``."""
        self._step = 0
        self.last_command = None
        self.last_planner_latency_s = float("nan")
        self.skill.reset()
        self.high_level.reset(obs)

    @property
    def step_count(self) -> int:
        """Control steps taken since :meth:`reset`."""
        return self._step

    @property
    def done(self) -> bool:
        """True once the high level has finished its task."""
        return self.high_level.done

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Returns the skill's action ``(da,)`` for observation ``obs: (do,)``."""
        if self._step % self.replan_every == 0:
            start = time.perf_counter()
            self.high_level.set_state(obs)
            self.high_level.optimize()
            self.last_planner_latency_s = time.perf_counter() - start
        else:
            self.last_planner_latency_s = float("nan")
        command = self.high_level.command(obs, self._step)
        self.last_command = command
        self._step += 1
        return self.skill.act(obs, command)

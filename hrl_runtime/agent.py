"""The hierarchical agent: a high level choosing commands for a skill."""

from __future__ import annotations

import time

import numpy as np

from hrl_runtime.high_level import HighLevel, PlanUnavailable
from hrl_runtime.safety import ControlFault
from hrl_runtime.skill import Skill


class HierarchicalAgent:
    """Runs a high level and a skill together, one control step at a time.

    Every ``replan_every`` control steps the high level is told how many steps of its plan ran
    (``advance``), given the observation and optimizes; every step it is asked for the command at
    that step, and the skill turns ``(obs, command)`` into an action.

    Args:
        high_level: chooses commands.
        skill: executes them.
        replan_every: control steps between optimizations; defaults to ``skill.hold_steps``.

    Attributes:
        last_planner_latency_s: seconds the last step spent in ``advance`` + ``set_state`` +
            ``optimize`` (NaN on steps without replanning).
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
        self._planned_at: int | None = None  # step of the last optimization (attempt)
        self._retry = False  # the last optimization raised: try again at the next step

    def reset(self, obs: np.ndarray) -> None:
        """Starts an episode from ``obs: (do,)``."""
        self._step = 0
        self._planned_at = None
        self._retry = False
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

    def act(self, obs: np.ndarray, step: int | None = None) -> np.ndarray:
        """Returns the skill's action ``(da,)`` for observation ``obs: (do,)``.

        Args:
            obs: the observation.
            step: the control step on the loop's clock (ticks the agent did not see, e.g. with a
                faulty observation, count too); None: the number of calls since :meth:`reset`.

        Raises:
            PlanUnavailable: the high level has no usable plan (its planner runs elsewhere).
            ControlFault: ``high_level_exception`` or ``skill_exception``, naming the error.
        """
        step = self._step if step is None else step
        high_level = self.high_level
        try:
            self.last_planner_latency_s = float("nan")
            if self._replan_due(step):
                self._replan(obs, step)
            command = high_level.command(obs, step)
        except PlanUnavailable:
            raise
        except Exception as error:
            raise ControlFault(
                "high_level_exception", f"{type(error).__name__}: {error}"
            ) from error
        self.last_command = command
        self._step = step + 1
        try:
            return self.skill.act(obs, command)
        except Exception as error:
            raise ControlFault("skill_exception", f"{type(error).__name__}: {error}") from error

    def _replan_due(self, step: int) -> bool:
        planned_at = self._planned_at
        return planned_at is None or self._retry or step - planned_at >= self.replan_every

    def _replan(self, obs: np.ndarray, step: int) -> None:
        """advance + set_state + optimize; a failed optimization is retried on the next step."""
        start = time.perf_counter()
        if self._planned_at is not None and step > self._planned_at:
            self.high_level.advance(step - self._planned_at)
        self._planned_at = step
        self.high_level.set_state(obs)
        self._retry = True
        self.high_level.optimize()
        self._retry = False
        self.last_planner_latency_s = time.perf_counter() - start

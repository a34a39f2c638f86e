"""A fixed sequence of goals: the simplest composition of a long-horizon task.

:class:`GoalSequence` issues goals one after another, advancing when the current goal is reached
(the planning position within ``success_radius``) or its step budget is spent. Alone, it sends the
goal itself as the command (for skills whose command is an x-y goal). Given a ``delegate`` high
level (e.g. a latent-space planner), it sets the delegate's goal and forwards its commands:
wrapping is composition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hrl_runtime.high_level import HighLevel


@dataclass(frozen=True)
class SequenceConfig:
    """Configuration of :class:`GoalSequence`."""

    success_radius: float = 0.5
    """A goal counts as reached within this distance, metres."""
    steps_per_goal: int = 1000
    """Control steps allowed per goal before moving on to the next."""


@dataclass
class GoalRecord:
    """How one goal of the sequence went."""

    goal: np.ndarray
    reached: bool = False
    final_distance: float = float("nan")
    initial_distance: float = float("nan")
    min_distance: float = float("inf")
    distance_sum: float = 0.0
    steps: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON view; ``normalized_distance`` is the mean distance over the attempt divided by
        the initial distance (the goal-following metric of DADS)."""
        mean = self.distance_sum / self.steps if self.steps else float("nan")
        normalized = mean / self.initial_distance if self.initial_distance > 0 else 0.0
        return {
            "goal": [float(v) for v in self.goal],
            "reached": self.reached,
            "final_distance": _finite_or_none(self.final_distance),
            "min_distance": _finite_or_none(self.min_distance),
            "normalized_distance": _finite_or_none(normalized),
            "steps": self.steps,
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


class GoalSequence(HighLevel):
    """Issues a fixed sequence of x-y goals.

    Args:
        goals: ``(N, 2)`` goals in metres, visited in order.
        xy_indices: observation entries holding the x-y position.
        config: radius and per-goal budget.
        delegate: an optional goal-conditioned high level that turns the current goal into
            commands; without one the command is the goal itself.
    """

    def __init__(
        self,
        goals: np.ndarray,
        xy_indices: tuple[int, int],
        config: SequenceConfig | None = None,
        delegate: HighLevel | None = None,
    ):
        goals = np.asarray(goals, np.float64)
        if goals.ndim != 2 or goals.shape[1] != 2 or len(goals) == 0:
            raise ValueError(f"goals must have shape (N, 2) with N >= 1, got {goals.shape}")
        if not np.all(np.isfinite(goals)):
            raise ValueError("goals must be finite")
        self.goals = goals
        self.xy_indices = list(xy_indices)
        self.config = config or SequenceConfig()
        self.delegate = delegate
        self.records: list[GoalRecord] = []
        self.index = 0
        self._obs: np.ndarray | None = None

    @property
    def current_goal(self) -> np.ndarray | None:
        """The goal being pursued, or None when the sequence is finished."""
        return self.goals[self.index] if self.index < len(self.goals) else None

    @property
    def done(self) -> bool:
        return self.index >= len(self.goals)

    def reset(self, obs: np.ndarray) -> None:
        self.records = [GoalRecord(goal=g.copy()) for g in self.goals]
        self.index = 0
        self._obs = np.asarray(obs)
        self._start_goal(np.asarray(obs))
        if self.delegate is not None:
            self.delegate.reset(obs)
            self.delegate.set_goal(self.goals[0])

    def _distance(self, obs: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(obs)[self.xy_indices] - self.goals[self.index]))

    def _start_goal(self, obs: np.ndarray) -> None:
        if not self.done:
            self.records[self.index].initial_distance = self._distance(obs)

    def planning_part(self) -> HighLevel | None:
        """The delegate does the planning (None: the sequence alone plans nothing)."""
        return self.delegate

    def replace_delegate(self, delegate: HighLevel) -> HighLevel:
        """Swaps the delegate (the asynchronous loop puts its stand-in here while it runs).

        Raises:
            NotImplementedError: the sequence has no delegate to replace.
        """
        if self.delegate is None:
            raise NotImplementedError("this GoalSequence has no delegate to replace")
        previous, self.delegate = self.delegate, delegate
        return previous

    def advance(self, executed_steps: int) -> None:
        if self.delegate is not None:
            self.delegate.advance(executed_steps)

    def set_state(self, obs: np.ndarray) -> None:
        self._obs = np.asarray(obs)
        if self.delegate is not None:
            self.delegate.set_state(obs)

    def optimize(self) -> None:
        if self.delegate is not None and not self.done:
            self.delegate.optimize()

    def _advance(self, obs: np.ndarray) -> None:
        """Books the current observation against the current goal; moves on when it is over."""
        record = self.records[self.index]
        distance = self._distance(obs)
        record.final_distance = distance
        record.min_distance = min(record.min_distance, distance)
        if distance <= self.config.success_radius:
            record.reached = True
        elif record.steps < self.config.steps_per_goal:
            return
        self.index += 1
        self._start_goal(obs)
        if self.delegate is not None and not self.done:
            self.delegate.set_goal(self.goals[self.index])

    def command(self, obs: np.ndarray, t: int) -> np.ndarray:
        """Current goal (or the delegate's command); books progress on the way."""
        if not self.done:
            self._advance(obs)
        if self.done:  # hold the last goal until the loop stops
            goal = self.goals[-1]
        else:
            goal = self.goals[self.index]
            record = self.records[self.index]
            record.steps += 1
            record.distance_sum += self._distance(obs)
        if self.delegate is not None:
            return self.delegate.command(obs, t)
        return goal.astype(np.float32)

    def plan_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"goal_index": self.index, "goals": self.goals}
        if self.delegate is not None:
            info.update(self.delegate.plan_info())
        return info

    def summary(self) -> dict[str, Any]:
        """Per-goal results and the success rate, JSON-ready."""
        goals = [record.to_json() for record in self.records]
        reached = sum(record.reached for record in self.records)
        return {"goals": goals, "success_rate": reached / len(self.goals) if goals else 0.0}

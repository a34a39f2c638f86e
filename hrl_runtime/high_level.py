"""The high-level planner/policy contract, after MuJoCo MPC's planner lifecycle.

A high level only ever produces commands for a skill. Its lifecycle:

1. ``reset(obs)`` at the start of an episode;
2. ``set_state(obs)`` with the latest observation before planning;
3. ``optimize()`` improves the stored nominal plan (one or more refinement iterations);
4. ``command(obs, t)`` reads the command to execute at control step ``t`` from the stored plan;
5. ``plan_info()`` reports what it last planned, for plots and diagnostics.

Display code does not belong here; wrapping is composition (a high level may hold a delegate).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class HighLevel(ABC):
    """Chooses the commands a skill follows."""

    def reset(self, obs: np.ndarray) -> None:
        """Starts a new episode from observation ``obs: (do,)``; clears any stored plan."""
        self.set_state(obs)

    @abstractmethod
    def set_state(self, obs: np.ndarray) -> None:
        """Stores the current observation ``obs: (do,)`` to plan from."""

    def optimize(self) -> None:
        """Improves the stored plan from the stored state (a no-op for fixed policies)."""

    @abstractmethod
    def command(self, obs: np.ndarray, t: int) -> np.ndarray:
        """The command ``(dc,)`` to execute at control step ``t`` given ``obs: (do,)``.

        Called once per control step; must be cheap (it reads the stored plan).
        """

    def plan_info(self) -> dict[str, Any]:
        """What the high level last planned (arrays keyed by name); empty when nothing to show."""
        return {}

    def set_goal(self, goal: np.ndarray) -> None:
        """Sets the goal of a goal-conditioned high level.

        Raises:
            NotImplementedError: when the high level does not take goals.
        """
        raise NotImplementedError(f"{type(self).__name__} does not take goals")

    @property
    def done(self) -> bool:
        """True once the high level has finished its task (the loop may stop)."""
        return False

"""The high-level planner/policy contract, after MuJoCo MPC's planner lifecycle.

A high level only ever produces commands for a skill. Its lifecycle:

1. ``reset(obs)`` at the start of an episode;
2. ``advance(executed_steps)`` tells it how many control steps of its stored plan ran since its
   last optimization (warm start: a planner shifts out the plan entries that are over);
3. ``set_state(obs)`` with the latest observation before planning;
4. ``optimize()`` improves the stored nominal plan (one or more refinement iterations);
5. ``command(obs, t)`` reads the command to execute at control step ``t`` from the stored plan;
6. ``plan_info()`` reports what it last planned, for plots and diagnostics.

The loops call 2-4 every ``replan_every`` control steps (synchronous loop) or as often as the
planner thread manages (asynchronous loop), and 5 every control step.

Composition: a wrapper (e.g. a goal sequence around a latent planner) holds a delegate.
:meth:`HighLevel.planning_part` says which part does the planning, so that the asynchronous loop
can run that part in its own thread and leave the rest on the control path; display code does not
belong here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

PLAN_STATUSES = ("waiting", "no_plan", "stale_plan")
"""Why :class:`PlanUnavailable` was raised (see there)."""


class PlanUnavailable(Exception):
    """Raised by :meth:`HighLevel.command` when there is no usable plan for step ``t``.

    Only a high level whose planning happens elsewhere raises it (the asynchronous loop's stand-in
    for a planner running in its own thread). The loop answers with its fallback action.

    Attributes:
        status: ``"waiting"`` (no plan yet, still within the staleness limit), ``"no_plan"``
            (none arrived within it) or ``"stale_plan"`` (the latest is too old).
        age_s: age of the latest plan, seconds (NaN when there is none).
    """

    def __init__(self, status: str, age_s: float = float("nan")):
        if status not in PLAN_STATUSES:
            raise ValueError(f"status must be one of {PLAN_STATUSES}, got {status!r}")
        super().__init__(f"{status.replace('_', ' ')} (age {age_s:.3f} s)")
        self.status = status
        self.age_s = age_s


class HighLevel(ABC):
    """Chooses the commands a skill follows."""

    def reset(self, obs: np.ndarray) -> None:
        """Starts a new episode from observation ``obs: (do,)``; clears any stored plan."""
        self.set_state(obs)

    def advance(self, executed_steps: int) -> None:
        """Tells the high level that ``executed_steps`` control steps of its current plan ran
        since its last :meth:`optimize` (called before :meth:`set_state` and :meth:`optimize`).

        A planner that keeps a nominal plan shifts out the entries that are over, so the next
        optimization starts from the rest of the plan (warm start). The default does nothing:
        a policy without a stored plan has nothing to shift.
        """

    @abstractmethod
    def set_state(self, obs: np.ndarray) -> None:
        """Stores the current observation ``obs: (do,)`` to plan from."""

    def optimize(self) -> None:
        """Improves the stored plan from the stored state (a no-op for fixed policies)."""

    @abstractmethod
    def command(self, obs: np.ndarray, t: int) -> np.ndarray:
        """The command ``(dc,)`` to execute at control step ``t`` given ``obs: (do,)``.

        Called once per control step; must be cheap (it reads the stored plan).

        Raises:
            PlanUnavailable: only a stand-in for a planner that runs elsewhere, when it has no
                usable plan.
        """

    def nominal_plan(self) -> np.ndarray | None:
        """The stored plan as ``(T, dc)`` commands made from the last :meth:`set_state`, entry
        ``i`` covering control steps ``[i * hold_steps, (i + 1) * hold_steps)`` from then on; the
        last entry is held. None when the high level keeps no such plan (then its command for the
        step it planned from, held, stands for its plan). The asynchronous loop publishes a copy
        after every optimization."""
        return None

    def planning_part(self) -> HighLevel | None:
        """The part of this high level that plans and may run in a planner thread.

        - ``self`` (the default): a planner; all of it may run in the planner thread;
        - its delegate: a composition wrapper whose own bookkeeping (which goal is next?) stays
          on the control path (then :meth:`replace_delegate` must work);
        - None: nothing to plan; all of it runs on the control path.
        """
        return self

    def replace_delegate(self, delegate: HighLevel) -> HighLevel:
        """Puts ``delegate`` where :meth:`planning_part` points and returns what was there.

        The asynchronous loop puts a stand-in for the planner thread there while it runs, and
        puts the planner back when it closes.

        Raises:
            NotImplementedError: the high level is not a composition wrapper.
        """
        raise NotImplementedError(f"{type(self).__name__} holds no delegate")

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

"""The safety layer of the real-time loop: checks, fallbacks, fault counting and the safe stop.

After ros2_control's command limits and fallback controllers and libfranka's reflexes: every
observation is checked before anything reads it, every action is checked for shape and
finiteness and clipped to the action space, and a faulty tick is answered by the fallback action
in the same tick. ``safe_stop_after`` consecutive faulty ticks latch a safe stop: from then on
only the stop action goes out, until :meth:`SafetyMonitor.reset` clears the latch.

The monitor is plain bookkeeping (no threads, no clocks); the loop engine
(:mod:`hrl_runtime.engine`, behind both loops and the server) drives it, one tick at a time, from
the control thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.spaces import Box

logger = logging.getLogger(__name__)

FALLBACKS = ("hold", "zero")

# Fault kinds, by where they are caught. Deadline misses are counted apart (they are timing, not
# content) but a tick that misses its deadline still counts toward the safe stop.
FAULT_KINDS = (
    "nonfinite_observation",
    "bad_observation_shape",
    "agent_exception",
    "skill_exception",
    "high_level_exception",
    "nonfinite_action",
    "bad_action_shape",
    "no_plan",
    "stale_plan",
    "physics_warning",
    "deadline_miss",
)


@dataclass(frozen=True)
class Fault:
    """One fault the loop caught and contained."""

    step: int
    kind: str
    detail: str


class ControlFault(Exception):
    """Raised on the control path to name the kind of fault (e.g. ``skill_exception``); the loop
    records it under that kind and answers with the fallback action."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def safe_action_for(space: Box, action: Any, field: str) -> np.ndarray:
    """The configured safe action (zero when None), checked against and clipped into ``space``.

    Raises:
        ValueError: naming ``field`` when the shape does not fit the action space.
    """
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    if action is None:
        action = np.zeros(space.shape)
    action = np.asarray(action, np.float64)
    if action.shape != space.shape:
        raise ValueError(f"{field} has shape {action.shape}, the action space is {space.shape}")
    return np.clip(action, low, high).astype(space.dtype)


@dataclass(frozen=True)
class SafetyConfig:
    """Configuration of :class:`SafetyMonitor`."""

    fallback: str = "hold"
    """Action on a faulty tick: ``hold`` the last safe action, or ``zero`` (the stop action)."""
    safe_stop_after: int | None = 10
    """Consecutive faulty ticks (faults or missed deadlines) that latch the safe stop; None:
    never latch (faulty ticks still get the fallback action)."""
    stop_action: tuple[float, ...] | None = None
    """Action sent while stopped (and before any safe action is known); None: zero, clipped."""

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        if self.fallback not in FALLBACKS:
            raise ValueError(
                f"SafetyConfig.fallback must be one of {FALLBACKS}, got {self.fallback!r}"
            )
        if self.safe_stop_after is not None and self.safe_stop_after < 1:
            raise ValueError(
                f"SafetyConfig.safe_stop_after must be >= 1, got {self.safe_stop_after}"
            )


@dataclass(frozen=True)
class SafeStop:
    """Why and when the safe stop latched."""

    step: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "reason": self.reason}


class SafetyMonitor:
    """Checks observations and actions, picks fallbacks, counts faults, latches the safe stop.

    Args:
        action_space: the plant's action space, ``(da,)``.
        observation_shape: the shape observations must have, ``(do,)``.
        config: fallback and stop settings.
        max_events: how many fault events to keep per episode (None: all).

    Attributes:
        fault_counts: faults by kind since the last reset (``deadline_miss`` included).
        events: the first ``max_events`` faults, in order, as :class:`Fault`.
        clipped_steps: ticks whose action had to be clipped into the action space.
        safe_stop: the latched stop, or None while running.
    """

    def __init__(
        self,
        action_space: Box,
        observation_shape: tuple[int, ...],
        config: SafetyConfig | None = None,
        max_events: int | None = 1000,
    ):
        self.config = config or SafetyConfig()
        self.config.validate()
        self.action_space = action_space
        self.observation_shape = tuple(observation_shape)
        self.dtype = action_space.dtype
        self.low = np.asarray(action_space.low, np.float64)
        self.high = np.asarray(action_space.high, np.float64)
        self.stop_action = safe_action_for(
            action_space, self.config.stop_action, "SafetyConfig.stop_action"
        )
        self.stop_action.setflags(write=False)
        self._hold_zero = self.config.fallback == "zero"
        self.fault_counts: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.first_detail: dict[str, str] = {}
        self.events: list[Fault] = []
        self.max_events = max_events
        self._step = 0
        self.reset()

    def reset(self) -> None:
        """Clears the latch, the fault counts and the held action (a new episode)."""
        self.last_safe_action = self.stop_action.copy()
        self.consecutive_faulty = 0
        self.safe_stop: SafeStop | None = None
        self.clipped_steps = 0
        for kind in self.fault_counts:
            self.fault_counts[kind] = 0
        self.first_detail.clear()
        self.events.clear()
        self._tick_faulty = False
        self._last_kind = ""

    @property
    def tick_faulty(self) -> bool:
        """True when the current tick has recorded a fault."""
        return self._tick_faulty

    @property
    def stopped(self) -> bool:
        """True while the safe stop is latched."""
        return self.safe_stop is not None

    # --- per tick ----------------------------------------------------------------------------
    def begin_tick(self, step: int) -> None:
        """Starts tick ``step``: no fault seen yet."""
        self._tick_faulty = False
        self._step = step

    def fault(self, kind: str, detail: str) -> None:
        """Records one fault of ``kind`` in the current tick."""
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
        if kind not in self.first_detail:
            self.first_detail[kind] = detail
            logger.warning("control fault at step %d (%s): %s", self._step, kind, detail)
        if self.max_events is None or len(self.events) < self.max_events:
            self.events.append(Fault(self._step, kind, detail))
        self._tick_faulty = True
        self._last_kind = kind

    def observation_ok(self, obs: np.ndarray) -> bool:
        """Checks ``obs`` has the expected shape and is finite; records a fault if not."""
        if obs.shape != self.observation_shape:
            self.fault(
                "bad_observation_shape",
                f"observation shape {obs.shape}, expected {self.observation_shape}",
            )
            return False
        if not np.isfinite(obs).all():
            self.fault("nonfinite_observation", "observation has NaN or inf")
            return False
        return True

    def fallback_action(self) -> np.ndarray:
        """The action for a faulty tick (or a tick without a plan): hold or zero."""
        return self.stop_action if self._hold_zero else self.last_safe_action

    def filter_action(self, proposed: Any) -> np.ndarray:
        """Checks and clips an action; returns it, or the fallback (with a fault recorded)."""
        try:
            action = np.asarray(proposed, np.float64)
        except (TypeError, ValueError) as error:
            self.fault("bad_action_shape", f"action is not numeric: {error}")
            return self.fallback_action()
        if action.shape != self.action_space.shape:
            self.fault(
                "bad_action_shape",
                f"action shape {action.shape}, expected {self.action_space.shape}",
            )
            return self.fallback_action()
        if not np.isfinite(action).all():
            self.fault("nonfinite_action", "action has NaN or inf")
            return self.fallback_action()
        clipped = np.clip(action, self.low, self.high)
        if not np.array_equal(clipped, action):
            self.clipped_steps += 1
        safe = clipped.astype(self.dtype)
        self.last_safe_action = safe
        return safe

    def end_tick(self, step: int, missed_deadline: bool = False) -> bool:
        """Closes a tick; returns True when this tick latched the safe stop."""
        if missed_deadline:
            self.fault_counts["deadline_miss"] += 1
            self._tick_faulty = True
            self._last_kind = "deadline_miss"
            self._step = step
        if not self._tick_faulty:
            self.consecutive_faulty = 0
            return False
        self.consecutive_faulty += 1
        limit = self.config.safe_stop_after
        if self.safe_stop is None and limit is not None and self.consecutive_faulty >= limit:
            self.latch(
                step,
                f"{self.consecutive_faulty} consecutive faulty ticks (last: {self._last_kind})",
            )
            return True
        return False

    def latch(self, step: int, reason: str) -> None:
        """Latches the safe stop now (idempotent)."""
        if self.safe_stop is None:
            self.safe_stop = SafeStop(step, reason)
            logger.error("safe stop at step %d: %s", step, reason)

    def faults(self) -> dict[str, int]:
        """Faults by kind (only kinds that occurred), with ``total`` (deadline misses excluded)."""
        kinds = {k: v for k, v in self.fault_counts.items() if v and k != "deadline_miss"}
        return {"total": sum(kinds.values()), **kinds}

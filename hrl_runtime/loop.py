"""The fixed-rate control loop: runs an agent on a plant with real-time accounting.

The loop is the last line of defence before the plant: every action is checked for shape and
finiteness and clipped to the action space; a non-finite observation, a non-finite or malformed
action, or an agent that raises never reaches the plant: the loop holds the last safe action and
counts the fault. It records per-step control latency (observation in -> action out), planner
latency (time the high level spent optimizing on that step) and deadline misses (control latency
over the period, or a tick that started late when pacing to the wall clock).

:class:`ControlLoop` is the synchronous loop: the agent's high level plans inline, on the control
thread. It shares its control path, pacing, recording and fault model with the asynchronous loop
(:mod:`hrl_runtime.engine`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hrl_runtime.engine import (
    Agent,
    ControlPath,
    EpisodeOptions,
    Plant,
    latency_summary_ms,
    run_episode,
)
from hrl_runtime.safety import Fault, SafetyConfig, SafetyMonitor, safe_action_for
from hrl_runtime.threads import ThreadPools, planner_threads, pool_report

__all__ = [
    "Agent",
    "ControlLoop",
    "Fault",
    "LoopConfig",
    "LoopResult",
    "Plant",
    "latency_summary_ms",
    "safe_action_for",
]


@dataclass(frozen=True)
class LoopConfig:
    """Configuration of :class:`ControlLoop`."""

    control_period_s: float = 0.01
    """Control period in seconds (the deadline of each tick); 0.01 s is 100 Hz."""
    realtime: bool = False
    """Pace ticks to the wall clock (for hardware); False runs as fast as the plant allows."""
    safe_action: tuple[float, ...] | None = None
    """Action sent when nothing safer is known; None: zero clipped into the action space."""
    safe_stop_after: int | None = None
    """Consecutive faulty ticks that latch a safe stop (only the safe action goes out until the
    next run); None: never latch, keep holding the last safe action on faulty ticks."""
    threads: int | None = None
    """numba threads of the inline planner (None: every usable core); BLAS and torch pools run
    with one thread during the run (see :mod:`hrl_runtime.threads`)."""


@dataclass
class LoopResult:
    """What happened during one :meth:`ControlLoop.run`.

    Attributes:
        observations: ``(N + 1, do)`` observations, the first from reset.
        actions: ``(N, da)`` actions as sent to the plant (checked and clipped).
        rewards: ``(N,)`` plant rewards.
        control_latency_s: ``(N,)`` seconds from observation to action per step.
        planner_latency_s: ``(N,)`` seconds spent planning per step, NaN where no replan.
        deadline_misses: ticks over the control period.
        clipped_steps: steps whose action had to be clipped to the action space.
        faults: every contained fault, in order.
        stop_reason: ``"done"``, ``"terminated"``, ``"truncated"``, ``"max_steps"`` or
            ``"safe_stop"``.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    control_latency_s: np.ndarray
    planner_latency_s: np.ndarray
    control_period_s: float
    deadline_misses: int = 0
    clipped_steps: int = 0
    faults: list[Fault] = field(default_factory=list)
    stop_reason: str = "max_steps"
    infos: list[dict[str, Any]] = field(default_factory=list)
    threads: dict[str, Any] = field(default_factory=dict)
    """The thread pools the run had (:func:`~hrl_runtime.threads.pool_report`)."""

    @property
    def steps(self) -> int:
        """Control steps executed."""
        return len(self.actions)

    def fault_counts(self) -> dict[str, int]:
        """Number of faults by kind."""
        return dict(Counter(f.kind for f in self.faults))

    def summary(self) -> dict[str, Any]:
        """JSON-ready timing and fault summary (milliseconds)."""
        return {
            "steps": self.steps,
            "control_period_ms": self.control_period_s * 1e3,
            "control_latency_ms": latency_summary_ms(self.control_latency_s),
            "planner_latency_ms": latency_summary_ms(self.planner_latency_s),
            "deadline_misses": self.deadline_misses,
            "clipped_steps": self.clipped_steps,
            "faults": {"total": len(self.faults), **self.fault_counts()},
            "stop_reason": self.stop_reason,
            "mode": "sync",
            "threads": self.threads,
        }


class ControlLoop:
    """Runs an agent on a plant at a fixed control rate, planning inline (synchronously).

    Args:
        config: loop configuration.
    """

    def __init__(self, config: LoopConfig | None = None):
        self.config = config or LoopConfig()
        if not self.config.control_period_s > 0:
            raise ValueError(f"control_period_s must be > 0, got {self.config.control_period_s}")
        self.safety_config = SafetyConfig(
            fallback="hold",
            safe_stop_after=self.config.safe_stop_after,
            stop_action=self.config.safe_action,
        )
        self.safety_config.validate()

    def run(
        self,
        agent: Agent,
        plant: Plant,
        *,
        max_steps: int,
        seed: int | None = None,
        reset_options: dict | None = None,
        keep_infos: bool = False,
        on_step: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    ) -> LoopResult:
        """Resets the plant and the agent, then runs until the agent is done or a limit is hit.

        Args:
            agent: produces actions from observations (reset on the first finite observation).
            plant: the environment or robot.
            max_steps: hard limit on control steps.
            seed: seed for the plant's reset.
            reset_options: passed to the plant's reset.
            keep_infos: keep every step's info dict in the result.
            on_step: called as ``on_step(step, action, next_obs)`` after each plant step, outside
                the timed control path (for recording and display).

        Returns:
            The recorded run.
        """
        space = plant.action_space
        safe_action_for(space, self.config.safe_action, "LoopConfig.safe_action")
        obs, info = plant.reset(seed=seed, options=reset_options)
        obs = np.asarray(obs)
        safety = SafetyMonitor(space, obs.shape, self.safety_config, max_events=None)
        path = ControlPath(agent, safety)
        path.start_episode()  # the agent is reset on the first finite observation
        options = EpisodeOptions(
            control_period_s=self.config.control_period_s,
            realtime=self.config.realtime,
            keep_infos=keep_infos,
        )
        numba = planner_threads(asynchronous=False, requested=self.config.threads)
        with ThreadPools(blas=1, torch=1, numba=numba):
            threads = pool_report()
            record = run_episode(
                path,
                plant,
                obs,
                max_steps,
                options,
                reset_info=info,
                on_step=None if on_step is None else lambda s, a, o, _info: on_step(s, a, o),
            )
        return LoopResult(
            observations=record.observations,
            actions=record.actions,
            rewards=record.rewards,
            control_latency_s=record.control_latency_s,
            planner_latency_s=record.planner_latency_s,
            control_period_s=self.config.control_period_s,
            deadline_misses=record.deadline_misses,
            clipped_steps=safety.clipped_steps,
            faults=list(safety.events),
            stop_reason=record.stop_reason,
            infos=record.infos,
            threads=threads,
        )

"""The fixed-rate control loop: runs an agent on a plant with real-time accounting.

The loop is the last line of defence before the plant: every action is checked for shape and
finiteness and clipped to the action space; a non-finite observation, a non-finite or malformed
action, or an agent that raises never reaches the plant: the loop holds the last safe action and
counts the fault. It records per-step control latency (observation in -> action out), planner
latency (time the high level spent optimizing on that step) and deadline misses (control latency
over the period, or a tick that started late when pacing to the wall clock).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from gymnasium.spaces import Box

logger = logging.getLogger(__name__)


class Plant(Protocol):
    """Anything with Gymnasium's reset/step API: a simulated env or a robot driver."""

    action_space: Box

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]: ...


class Agent(Protocol):
    """What the loop drives; :class:`~hrl_runtime.agent.HierarchicalAgent` is one."""

    last_planner_latency_s: float

    def reset(self, obs: np.ndarray) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    @property
    def done(self) -> bool: ...


@dataclass(frozen=True)
class LoopConfig:
    """Configuration of :class:`ControlLoop`."""

    control_period_s: float = 0.01
    """Control period in seconds (the deadline of each tick); 0.01 s is 100 Hz."""
    realtime: bool = False
    """Pace ticks to the wall clock (for hardware); False runs as fast as the plant allows."""
    safe_action: tuple[float, ...] | None = None
    """Action sent when nothing safer is known; None: zero clipped into the action space."""


@dataclass(frozen=True)
class Fault:
    """One fault the loop caught and contained."""

    step: int
    kind: str
    detail: str


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
        stop_reason: ``"done"``, ``"terminated"``, ``"truncated"`` or ``"max_steps"``.
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
        }


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


def latency_summary_ms(latencies_s: np.ndarray) -> dict[str, float | None]:
    """p50, p99 and max of latencies in seconds (NaN entries ignored), in milliseconds."""
    values = np.asarray(latencies_s, np.float64)
    values = values[np.isfinite(values)] * 1e3
    if values.size == 0:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    return {
        "p50": float(np.percentile(values, 50)),
        "p99": float(np.percentile(values, 99)),
        "max": float(values.max()),
        "count": int(values.size),
    }


class ControlLoop:
    """Runs an agent on a plant at a fixed control rate (synchronously).

    Args:
        config: loop configuration.
    """

    def __init__(self, config: LoopConfig | None = None):
        self.config = config or LoopConfig()
        if not self.config.control_period_s > 0:
            raise ValueError(f"control_period_s must be > 0, got {self.config.control_period_s}")

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
            agent: produces actions from observations.
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
        space: Box = plant.action_space
        low = np.asarray(space.low, space.dtype)
        high = np.asarray(space.high, space.dtype)
        period = self.config.control_period_s
        safe_action = safe_action_for(space, self.config.safe_action, "LoopConfig.safe_action")

        obs, info = plant.reset(seed=seed, options=reset_options)
        obs = np.asarray(obs)
        observations = np.empty((max_steps + 1, *obs.shape), np.float64)
        actions = np.empty((max_steps, *space.shape), space.dtype)
        rewards = np.empty(max_steps, np.float64)
        control_latency = np.empty(max_steps, np.float64)
        planner_latency = np.full(max_steps, np.nan, np.float64)
        observations[0] = obs
        faults: list[Fault] = []
        infos: list[dict[str, Any]] = [info] if keep_infos else []
        deadline_misses = clipped = 0
        stop_reason = "max_steps"

        def fault(step: int, kind: str, detail: str) -> None:
            if not any(f.kind == kind for f in faults):
                logger.warning("control loop fault at step %d (%s): %s", step, kind, detail)
            faults.append(Fault(step, kind, detail))

        agent_ready = False  # the agent is reset on the first finite observation
        steps = 0
        next_tick = time.perf_counter()
        for step in range(max_steps):
            if self.config.realtime:
                now = time.perf_counter()
                if now < next_tick:
                    time.sleep(next_tick - now)
                elif now - next_tick > period:
                    # Overrun: skip the missed cycles instead of bursting to catch up.
                    missed = int((now - next_tick) // period)
                    deadline_misses += missed
                    next_tick += missed * period
                next_tick += period
            start = time.perf_counter()
            action = safe_action
            if not np.all(np.isfinite(obs)):
                fault(step, "nonfinite_observation", "observation has NaN or inf; holding action")
            else:
                try:
                    if not agent_ready:
                        agent.reset(obs)
                        agent_ready = True
                    proposed = np.asarray(agent.act(obs), np.float64)
                except Exception as error:
                    fault(step, "agent_exception", f"{type(error).__name__}: {error}")
                else:
                    planner_latency[step] = agent.last_planner_latency_s
                    if proposed.shape != space.shape:
                        fault(
                            step,
                            "bad_action_shape",
                            f"action shape {proposed.shape}, expected {space.shape}",
                        )
                    elif not np.all(np.isfinite(proposed)):
                        fault(step, "nonfinite_action", "action has NaN or inf; holding action")
                    else:
                        action = np.clip(proposed, low, high).astype(space.dtype)
                        if not np.array_equal(action, proposed.astype(space.dtype)):
                            clipped += 1
                        safe_action = action
            latency = time.perf_counter() - start
            control_latency[step] = latency
            if latency > period:
                deadline_misses += 1
            actions[step] = action
            obs, reward, terminated, truncated, info = plant.step(action)
            obs = np.asarray(obs)
            if info.get("physics_warning"):
                fault(step, "physics_warning", str(info["physics_warning"]))
            observations[step + 1] = obs
            rewards[step] = reward
            if keep_infos:
                infos.append(info)
            if on_step is not None:
                on_step(step, action, obs)
            steps = step + 1
            if terminated or truncated or agent.done:
                stop_reason = "terminated" if terminated else "truncated" if truncated else "done"
                break
        return LoopResult(
            observations=observations[: steps + 1],
            actions=actions[:steps],
            rewards=rewards[:steps],
            control_latency_s=control_latency[:steps],
            planner_latency_s=planner_latency[:steps],
            control_period_s=period,
            deadline_misses=deadline_misses,
            clipped_steps=clipped,
            faults=faults,
            stop_reason=stop_reason,
            infos=infos,
        )

"""The loop engine behind both control loops: one control path, one fault model, one pacer.

:class:`ControlPath` is one control update (after ros2_control's update and libfranka's reflexes):
check the observation; ask the agent for an action (the agent raising, or its high level having
no usable plan, is answered by the fallback action in the same tick); check and clip the action.
Every fault goes through one :class:`~hrl_runtime.safety.SafetyMonitor`, which also latches the
safe stop when it is configured to.

:func:`run_episode` runs a control path on a plant: paced to the wall clock (an overrun skips the
missed cycles, never bursts to catch up, and counts them) or as fast as the plant allows, and
records observations, actions, latencies, lateness and plan age in preallocated arrays.

The synchronous :class:`~hrl_runtime.loop.ControlLoop` runs a whole agent (its high level plans
inline) through it; the :class:`~hrl_runtime.async_loop.AsyncControlLoop` runs the same agent
type with the planner's stand-in in place of the planner, whose thread runs beside.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hrl_runtime.agent import HierarchicalAgent
from hrl_runtime.high_level import PlanUnavailable
from hrl_runtime.safety import ControlFault, SafetyMonitor

OnStep = Callable[[int, np.ndarray, np.ndarray, dict], None]
"""``on_step(step, action, next_obs, info)`` after each plant step, outside the timed path."""


class Agent(Protocol):
    """What the loop drives; :class:`~hrl_runtime.agent.HierarchicalAgent` is one.

    ``act`` may raise :class:`~hrl_runtime.safety.ControlFault` to name a fault's kind or
    :class:`~hrl_runtime.high_level.PlanUnavailable` when it has no plan; any other exception is
    recorded as ``agent_exception``.
    """

    last_planner_latency_s: float

    def reset(self, obs: np.ndarray) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    @property
    def done(self) -> bool: ...


class Plant(Protocol):
    """Anything with Gymnasium's reset/step API: a simulated env or a robot driver."""

    action_space: Any

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]: ...


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


class ControlPath:
    """One control update at a time: observation in, checked and clipped action out; never raises.

    Args:
        agent: produces actions; a :class:`~hrl_runtime.agent.HierarchicalAgent` is given the
            loop's step (so plans stay on the loop's clock when ticks are faulty).
        safety: checks, fallbacks, fault counting and the safe stop.
        before_act: ``before_act(obs, step, observed_at)`` after the observation passed its
            checks, before the agent runs (the asynchronous loop posts it to the planner there).

    Attributes:
        step_count: ticks since :meth:`start_episode`.
        status: what the last tick did: ``ok``, ``fault``, ``waiting``, ``no_plan``,
            ``stale_plan``, ``safe_stop`` or ``inactive``.
        no_plan_ticks: ticks that sent the fallback because no plan existed yet.
        active: ticks run the agent only while active.
        planner_latency_s: seconds the agent planned inline in the last tick (NaN: it did not).
    """

    def __init__(
        self,
        agent: Agent,
        safety: SafetyMonitor,
        before_act: Callable[[np.ndarray, int, float], None] | None = None,
    ):
        self.agent = agent
        self.safety = safety
        self.before_act = before_act
        self._timed = isinstance(agent, HierarchicalAgent)  # resolved once, not per tick
        self.step_count = 0
        self.status = "inactive"
        self.no_plan_ticks = 0
        self.active = False
        self.planner_latency_s = float("nan")
        self._agent_ready = False

    def start_episode(self, obs: np.ndarray | None = None) -> None:
        """Clears the counters and the safe stop; resets the agent from ``obs`` now, or (None)
        on the first tick whose observation passes the checks."""
        self.safety.reset()
        self.step_count = 0
        self.no_plan_ticks = 0
        self._agent_ready = False
        if obs is not None:
            self.agent.reset(obs)
            self._agent_ready = True
        self.active = True
        self.status = "ok"

    def tick(self, obs: np.ndarray, observed_at: float) -> np.ndarray:
        """The action ``(da,)`` for ``obs: (do,)`` taken at ``observed_at`` (perf_counter s)."""
        step = self.step_count
        safety = self.safety
        safety.begin_tick(step)
        self.planner_latency_s = float("nan")
        self.step_count = step + 1
        if safety.stopped or not self.active:
            self.status = "safe_stop" if safety.stopped else "inactive"
            return safety.stop_action
        obs = np.asarray(obs)
        if not safety.observation_ok(obs):
            self.status = "fault"
            return safety.fallback_action()
        if self.before_act is not None:
            self.before_act(obs, step, observed_at)
        try:
            if not self._agent_ready:
                self.agent.reset(obs)
                self._agent_ready = True
            proposed = self.agent.act(obs, step) if self._timed else self.agent.act(obs)
        except PlanUnavailable as missing:
            return self._no_plan(missing)
        except ControlFault as fault:
            safety.fault(fault.kind, fault.detail)
            self.status = "fault"
            return safety.fallback_action()
        except Exception as error:
            safety.fault("agent_exception", f"{type(error).__name__}: {error}")
            self.status = "fault"
            return safety.fallback_action()
        self.planner_latency_s = self.agent.last_planner_latency_s
        action = safety.filter_action(proposed)
        self.status = "fault" if safety.tick_faulty else "ok"
        return action

    def _no_plan(self, missing: PlanUnavailable) -> np.ndarray:
        self.status = missing.status
        if missing.status == "waiting":
            self.no_plan_ticks += 1
        else:
            self.safety.fault(missing.status, str(missing))
        return self.safety.fallback_action()

    def end_tick(self, missed_deadline: bool = False) -> bool:
        """Closes the tick; returns True when it latched the safe stop."""
        latched = self.safety.end_tick(self.step_count - 1, missed_deadline)
        if latched:
            self.status = "safe_stop"
        return latched

    def plant_fault(self, step: int, kind: str, detail: str) -> bool:
        """Records a fault the plant reported after tick ``step``; True when it latched."""
        self.safety.begin_tick(step)
        self.safety.fault(kind, detail)
        return self.end_tick()


@dataclass
class Recording:
    """What :func:`run_episode` recorded (arrays cut to the ``steps`` executed)."""

    observations: np.ndarray
    """``(N + 1, do)``, the first the starting observation."""
    actions: np.ndarray
    """``(N, da)`` as sent to the plant."""
    rewards: np.ndarray
    """``(N,)`` plant rewards."""
    control_latency_s: np.ndarray
    """``(N,)`` seconds from observation to action."""
    tick_lateness_s: np.ndarray
    """``(N,)`` seconds each tick started after its scheduled time (0 when not paced)."""
    plan_age_s: np.ndarray
    """``(N,)`` age of the plan each tick used (NaN where none or not known)."""
    planner_latency_s: np.ndarray
    """``(N,)`` seconds the agent planned inline on each tick (NaN where it did not)."""
    deadline_misses: int = 0
    """Ticks whose action came after the end of their period, plus skipped cycles."""
    skipped_cycles: int = 0
    """Cycles skipped after overruns (included in ``deadline_misses``)."""
    stop_reason: str = "max_steps"
    """``done``, ``terminated``, ``truncated``, ``max_steps``, ``safe_stop`` or ``stopped``."""
    wall_time_s: float = 0.0
    infos: list[dict[str, Any]] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.actions)


@dataclass(frozen=True)
class EpisodeOptions:
    """How :func:`run_episode` runs and stops."""

    control_period_s: float
    """Deadline of each tick, seconds."""
    realtime: bool = True
    """Pace ticks to the wall clock; False: as fast as the plant allows (a tick still misses
    its deadline when it takes longer than the period)."""
    stop_when_done: bool = True
    """End when the agent reports ``done``."""
    keep_infos: bool = False
    """Keep every step's info dict (the reset's first)."""


def run_episode(
    path: ControlPath,
    plant: Plant,
    obs: np.ndarray,
    max_steps: int,
    options: EpisodeOptions,
    *,
    reset_info: dict | None = None,
    plan_age: Callable[[], float] | None = None,
    should_stop: Callable[[int, np.ndarray], bool] | None = None,
    on_step: OnStep | None = None,
) -> Recording:
    """Runs ``path`` on ``plant`` from ``obs`` for at most ``max_steps`` ticks.

    Args:
        path: the control path (its episode started).
        plant: the environment or robot.
        obs: ``(do,)`` the starting observation.
        max_steps: hard limit on ticks.
        options: pacing and stopping.
        reset_info: the reset's info dict (kept first with ``keep_infos``).
        plan_age: reads the age of the plan the last tick used, seconds.
        should_stop: ``should_stop(step, obs)`` after each plant step; True ends the run.
        on_step: see :data:`OnStep`.
    """
    record = _Buffers(obs, max_steps, plant.action_space)
    infos: list[dict[str, Any]] = [reset_info or {}] if options.keep_infos else []
    period = options.control_period_s
    missed_total = skipped = steps = 0
    stop_reason = "max_steps"
    start_wall = scheduled = time.perf_counter()
    for step in range(max_steps):
        now = time.perf_counter()
        missed = 0
        if not options.realtime:
            scheduled = now
        elif now < scheduled:
            time.sleep(scheduled - now)
            now = time.perf_counter()
        elif now - scheduled >= period:
            # Overrun: skip the cycles that were missed; never burst to catch up.
            missed = int((now - scheduled) // period)
            skipped += missed
            scheduled += missed * period
        action = path.tick(obs, now)
        done_at = time.perf_counter()
        late = done_at > scheduled + period
        missed_total += missed + late
        # A tick after skipped cycles missed its deadline too (it counts toward the safe stop).
        if path.end_tick(late or missed > 0):
            action = path.safety.stop_action
        record.tick(step, now - scheduled, done_at - now, path.planner_latency_s, plan_age)
        scheduled += period
        record.actions[step] = action
        obs, reward, terminated, truncated, info = plant.step(action)
        obs = np.asarray(obs)
        if info.get("physics_warning"):
            path.plant_fault(step, "physics_warning", str(info["physics_warning"]))
        record.observations[step + 1] = obs
        record.rewards[step] = reward
        steps = step + 1
        if options.keep_infos:
            infos.append(info)
        if on_step is not None:
            on_step(step, action, obs, info)
        stop_reason = _stop_reason(path, terminated, truncated, options, should_stop, step, obs)
        if stop_reason:
            break
    path.active = False
    return record.cut(
        steps,
        deadline_misses=missed_total,
        skipped_cycles=skipped,
        stop_reason=stop_reason or "max_steps",
        wall_time_s=time.perf_counter() - start_wall,
        infos=infos,
    )


def _stop_reason(path, terminated, truncated, options, should_stop, step, obs) -> str:
    """Why the run ends after this step ('' to go on), in order of precedence."""
    if path.safety.stopped:
        return "safe_stop"
    if terminated or truncated:
        return "terminated" if terminated else "truncated"
    if options.stop_when_done and path.agent.done:
        return "done"
    if should_stop is not None and should_stop(step, obs):
        return "stopped"
    return ""


class _Buffers:
    """The preallocated arrays of one episode."""

    def __init__(self, obs: np.ndarray, max_steps: int, space: Any):
        self.observations = np.empty((max_steps + 1, *obs.shape), np.float64)
        self.observations[0] = obs
        self.actions = np.empty((max_steps, *space.shape), space.dtype)
        self.rewards = np.zeros(max_steps)
        self.control_latency = np.empty(max_steps)
        self.lateness = np.empty(max_steps)
        self.plan_age = np.full(max_steps, np.nan)
        self.planner_latency = np.full(max_steps, np.nan)

    def tick(self, step: int, lateness: float, latency: float, planning: float, plan_age) -> None:
        self.lateness[step] = lateness
        self.control_latency[step] = latency
        self.planner_latency[step] = planning
        if plan_age is not None:
            self.plan_age[step] = plan_age()

    def cut(self, steps: int, **fields: Any) -> Recording:
        return Recording(
            observations=self.observations[: steps + 1],
            actions=self.actions[:steps],
            rewards=self.rewards[:steps],
            control_latency_s=self.control_latency[:steps],
            tick_lateness_s=self.lateness[:steps],
            plan_age_s=self.plan_age[:steps],
            planner_latency_s=self.planner_latency[:steps],
            **fields,
        )

"""The asynchronous control loop: a planning thread beside a fixed-rate control path.

After MuJoCo MPC's agent: the high level optimizes in its own thread and publishes each finished
plan as an immutable :class:`Plan` (a copy of the nominal commands plus the control step and the
episode it was made for). Publishing is one reference assignment under a lock held only for that
swap, so the control path never waits on the planner and never reads planner buffers that
``optimize()`` is mutating. numba kernels run with ``nogil=True``, so the two threads run in
parallel.

Which object runs where: a composition wrapper (a high level with a ``delegate``, e.g.
:class:`~planners.GoalSequence` around :class:`~planners.LatentMPPI`) runs on the control path
and its delegate runs in the planner thread. The wrapper talks to a :class:`PlanProxy` standing
in for the delegate: ``set_goal`` posts the goal to the planner (a versioned single-slot mailbox,
applied between two optimizations, never during one), ``command`` reads the latest plan. Goal
bookkeeping (reached? next goal?) therefore happens every tick on the control thread, and the
planner only ever sees whole goals. A high level without a ``delegate`` attribute runs entirely
in the planner thread behind a proxy; a wrapper whose ``delegate`` is None (a fixed policy such
as a bare goal sequence) runs entirely on the control path, with no planner thread.

The control path, per tick (after ros2_control's update and libfranka's reflexes): check the
observation; read the plan (none yet: the safe action; older than ``max_plan_age_s``: fall back
and count a fault); run the skill (raises or returns NaN/inf: fall back in the same tick); clip.
``safe_stop_after`` consecutive faulty ticks (faults or missed deadlines) latch a safe stop that
only :meth:`AsyncControlLoop.reset` clears. Pacing follows the wall clock; an overrun skips the
missed cycles (no catch-up burst) and counts them.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium.spaces import Box

from hrl_runtime.high_level import HighLevel
from hrl_runtime.loop import Fault, Plant, latency_summary_ms
from hrl_runtime.safety import SafeStop, SafetyConfig, SafetyMonitor
from hrl_runtime.skill import Skill

logger = logging.getLogger(__name__)

_NO_DELEGATE_ATTRIBUTE = object()


@dataclass(frozen=True)
class AsyncLoopConfig:
    """Configuration of :class:`AsyncControlLoop`."""

    control_period_s: float = 0.01
    """Control period, seconds (the deadline of each tick); 0.01 s is 100 Hz."""
    max_plan_age_s: float = 0.25
    """A plan whose observation is older than this is stale: fall back, count a fault."""
    planner_min_period_s: float | None = None
    """Shortest time between two optimizations; None: one control period (no more plans than
    ticks, which leaves CPU to the control path on small machines)."""
    first_plan_timeout_s: float = 10.0
    """:meth:`AsyncControlLoop.reset` waits this long for the first plan of the episode (0: do
    not wait; the first ticks then send the safe action until a plan arrives)."""
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    """Fallback action and safe-stop settings."""
    gc_freeze: bool = True
    """Collect and freeze the heap before running, so that collections during the run only
    look at new objects (a full collection of a heap with torch loaded takes tens of ms)."""
    gc_disable: bool = True
    """Disable automatic garbage collection while running (re-enabled afterwards); the control
    path allocates no reference cycles, so nothing accumulates."""
    switch_interval_s: float | None = 0.0005
    """GIL switch interval while running (CPython's default is 5 ms, longer than a tick)."""
    planner_nice: int = 0
    """Niceness of the planner thread and the numba workers it starts (Linux), so that the
    control thread wins the CPU on small machines."""
    planner_rt_priority: int | None = None
    """SCHED_FIFO priority for the planner thread (and the numba workers it starts), below the
    control thread's: then no ordinary process can preempt the planner while it holds the GIL
    the control thread is waiting for (priority inversion). None: ``planner_nice`` applies."""
    control_rt_priority: int | None = 50
    """SCHED_FIFO priority (1-99) for the control thread while running (Linux, needs
    CAP_SYS_NICE; falls back to normal scheduling with a log line); None: normal scheduling."""

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        if not self.control_period_s > 0:
            raise ValueError(f"control_period_s must be > 0, got {self.control_period_s}")
        if not self.max_plan_age_s > 0:
            raise ValueError(f"max_plan_age_s must be > 0, got {self.max_plan_age_s}")
        if self.first_plan_timeout_s < 0:
            raise ValueError(f"first_plan_timeout_s must be >= 0, got {self.first_plan_timeout_s}")
        self.safety.validate()

    @property
    def planner_period_s(self) -> float:
        """The resolved shortest time between two optimizations, seconds."""
        if self.planner_min_period_s is None:
            return self.control_period_s
        return self.planner_min_period_s


@dataclass(frozen=True)
class Plan:
    """An immutable snapshot of a finished plan.

    Attributes:
        commands: ``(T, dc)`` read-only commands; entry ``i`` covers control steps
            ``[step + i * hold_steps, step + (i + 1) * hold_steps)``; the last one is held.
        step: the control step of the observation the plan was made from.
        observed_at: ``time.perf_counter()`` when that observation was taken, seconds.
        episode: the episode (reset count) it belongs to.
        goal_version: the goal it was made for (see :meth:`PlanProxy.set_goal`).
        hold_steps: control steps per plan entry.
        latency_s: seconds the optimization took.
    """

    commands: np.ndarray
    step: int
    observed_at: float
    episode: int
    goal_version: int
    hold_steps: int
    latency_s: float

    def command_at(self, step: int) -> np.ndarray:
        """The command ``(dc,)`` for control step ``step``."""
        index = (step - self.step) // self.hold_steps
        return self.commands[min(max(index, 0), len(self.commands) - 1)]


def nominal_commands(planner: HighLevel, obs: np.ndarray, step: int) -> np.ndarray:
    """A copy of ``planner``'s current plan as ``(T, dc)`` commands.

    A planner exposing its nominal plan as ``mean: (T, dc)`` (:class:`~planners.LatentMPPI`)
    publishes all T entries; any other high level publishes its command for ``step``, held.
    """
    mean = getattr(planner, "mean", None)
    if isinstance(mean, np.ndarray) and mean.ndim == 2:
        commands = mean.copy()
    else:
        commands = np.array(planner.command(obs, step), copy=True).reshape(1, -1)
    commands.setflags(write=False)
    return commands


class _Ring:
    """A preallocated ring of floats (the last ``capacity`` values)."""

    def __init__(self, capacity: int):
        self.values = np.full(capacity, np.nan)
        self.count = 0

    def add(self, value: float) -> None:
        self.values[self.count % len(self.values)] = value
        self.count += 1

    def clear(self) -> None:
        self.values[:] = np.nan
        self.count = 0

    def recent(self) -> np.ndarray:
        return self.values[: min(self.count, len(self.values))]


class PlannerThread:
    """Runs a high level's ``optimize`` in a thread and publishes :class:`Plan` snapshots.

    The control thread talks to it through three single-slot mailboxes, each replaced whole
    under ``_lock`` (held only for the swap): the latest observation, the goal (with a version)
    and the episode (a reset request). The planner reads all three between optimizations.

    Args:
        planner: the high level to optimize; touched only by this thread once started.
        hold_steps: control steps per plan entry (the skill's).
        min_period_s: shortest time between two optimizations.
        nice: niceness to add to the thread (Linux; ignored elsewhere).
    """

    def __init__(
        self,
        planner: HighLevel,
        hold_steps: int,
        min_period_s: float,
        nice: int = 0,
        rt_priority: int | None = None,
    ):
        self.planner = planner
        self.hold_steps = hold_steps
        self.min_period_s = min_period_s
        self.nice = nice
        self.rt_priority = rt_priority
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._observation: tuple[np.ndarray, int, float] | None = None
        self._goal: tuple[np.ndarray, int] | None = None
        self._episode = 0
        self.plan: Plan | None = None
        self.latencies = _Ring(100_000)
        self.plans_made = 0
        self.faults: dict[str, int] = {}
        self.first_error: str | None = None
        self._rate_window: tuple[float, int] = (time.perf_counter(), 0)
        self._thread = threading.Thread(target=self._run, name="hrl-planner", daemon=True)

    # --- control-thread side -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def post_observation(self, obs: np.ndarray, step: int, observed_at: float) -> None:
        """Hands the latest observation ``(do,)`` to the planner (copied)."""
        item = (obs.copy(), step, observed_at)
        with self._lock:
            self._observation = item
        self._wake.set()

    def post_goal(self, goal: np.ndarray, version: int) -> None:
        """Hands a new goal to the planner; applied before its next optimization."""
        item = (np.array(goal, copy=True), version)
        with self._lock:
            self._goal = item
        self._wake.set()

    def new_episode(
        self,
        episode: int,
        obs: np.ndarray,
        observed_at: float,
        goal: tuple[np.ndarray, int] | None,
    ) -> None:
        """Starts episode ``episode`` from ``obs`` with ``goal`` (in one swap, so the planner
        never sees the new episode with the old goal); plans of earlier episodes are dropped."""
        with self._lock:
            self._episode = episode
            self._observation = (obs.copy(), 0, observed_at)
            if goal is not None:
                self._goal = goal
            self.plan = None
        self._wake.set()

    def reset_stats(self) -> None:
        self.latencies.clear()
        self.plans_made = 0
        self._rate_window = (time.perf_counter(), 0)

    def rate_hz(self) -> float:
        """Optimizations per second since the last :meth:`reset_stats`."""
        start, made = self._rate_window
        elapsed = time.perf_counter() - start
        return (self.plans_made - made) / elapsed if elapsed > 0 else 0.0

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- planner-thread side -------------------------------------------------------------------
    def _set_priority(self) -> None:
        # Threads inherit the scheduling of the thread that starts them, so the numba/OpenMP
        # workers this thread starts on its first parallel kernel get the same settings.
        if self.rt_priority is not None and hasattr(os, "sched_setscheduler"):
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.rt_priority))
                return
            except OSError as error:
                logger.info("SCHED_FIFO for the planner thread refused (%s)", error)
        if self.nice and hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
            try:  # on Linux, PRIO_PROCESS with a thread id sets that thread's niceness
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError as error:
                logger.info("could not renice the planner thread: %s", error)

    def _fault(self, kind: str, detail: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        if self.first_error is None:
            self.first_error = f"{kind}: {detail}"
            logger.warning("planner fault (%s): %s", kind, detail)

    def _run(self) -> None:
        self._set_priority()
        episode = -1
        goal_version = -1
        planned_step = -1
        last_start = -np.inf
        while not self._stopping:
            self._wake.wait(0.1)
            self._wake.clear()
            wait = last_start + self.min_period_s - time.perf_counter()
            if wait > 0:
                time.sleep(wait)  # rate limit first, then plan from the newest observation
            if self._stopping:
                break
            with self._lock:
                observation, goal, current_episode = self._observation, self._goal, self._episode
            if observation is None:
                continue
            obs, step, observed_at = observation
            try:
                if current_episode != episode:
                    episode, planned_step = current_episode, -1
                    self.planner.reset(obs)
                    goal_version = -1
                if goal is not None and goal[1] != goal_version:
                    self.planner.set_goal(goal[0])
                    goal_version = goal[1]
                elif step == planned_step:
                    continue  # nothing new to plan from
                if planned_step >= 0:
                    self._account_executed(obs, planned_step, step)
                last_start = start = time.perf_counter()
                self.planner.set_state(obs)
                self.planner.optimize()
                commands = nominal_commands(self.planner, obs, step)
                latency = time.perf_counter() - start
            except Exception as error:
                self._fault("planner_exception", f"{type(error).__name__}: {error}")
                time.sleep(self.min_period_s)  # do not spin on a planner that keeps failing
                continue
            planned_step = step
            self.latencies.add(latency)
            self.plans_made += 1
            if not np.isfinite(commands).all():
                # A diverged rollout: never publish it; the control path sees the plan age.
                self._fault("nonfinite_plan", "the optimized plan has NaN or inf")
                continue
            plan = Plan(
                commands, step, observed_at, episode, goal_version, self.hold_steps, latency
            )
            with self._lock:
                if self._episode == episode:
                    self.plan = plan
            self._wake.set()  # plan again from the newest observation

    def _account_executed(self, obs: np.ndarray, planned_step: int, step: int) -> None:
        """Tells the planner how many whole plan entries ran since its last plan (warm start).

        The HighLevel lifecycle learns what was executed from ``command(obs, t)`` calls: reading
        the commands for the first and last executed entries makes :class:`LatentMPPI` shift its
        nominal plan by that many entries before the next optimization.
        """
        entries = (step - planned_step) // self.hold_steps
        if entries >= 1 and isinstance(getattr(self.planner, "mean", None), np.ndarray):
            self.planner.command(obs, planned_step)
            self.planner.command(obs, planned_step + (entries - 1) * self.hold_steps)


class PlanProxy(HighLevel):
    """Stands in for a planner that runs in a :class:`PlannerThread`, on the control path.

    ``command`` returns the latest plan's command, or None (and sets ``status``) when there is no
    usable plan: ``"waiting"`` (none yet, still within the staleness limit), ``"no_plan"`` or
    ``"stale_plan"``.
    """

    def __init__(self, worker: PlannerThread, max_plan_age_s: float):
        self.worker = worker
        self.max_plan_age_s = max_plan_age_s
        self.status = "waiting"
        self.plan_age_s = float("nan")
        self.goal_version = 0
        self.episode = 0
        self._episode_start = time.perf_counter()
        self._now = self._episode_start
        self._starting: np.ndarray | None = None
        self._pending_goal: tuple[np.ndarray, int] | None = None

    def reset(self, obs: np.ndarray) -> None:
        """Opens a new episode; goals set before :meth:`commit_episode` travel with it."""
        self._starting = np.array(obs, copy=True)
        self._pending_goal = None

    def commit_episode(self) -> None:
        """Hands the new episode (observation and first goal together) to the planner."""
        if self._starting is None:
            raise RuntimeError("PlanProxy.commit_episode() before reset(obs)")
        self.episode += 1
        self._episode_start = time.perf_counter()
        self.worker.new_episode(
            self.episode, self._starting, self._episode_start, self._pending_goal
        )
        self._starting = None

    def start_clock(self) -> None:
        """Counts plan age from now at the latest (the first tick comes now)."""
        self._episode_start = time.perf_counter()

    def set_state(self, obs: np.ndarray) -> None:
        pass  # the loop posts every observation to the planner thread

    def optimize(self) -> None:
        pass  # the planner thread optimizes

    def set_goal(self, goal: np.ndarray) -> None:
        """Posts ``goal`` to the planner; it applies it between two optimizations."""
        self.goal_version += 1
        if self._starting is not None:  # inside reset: travels with the episode
            self._pending_goal = (np.array(goal, copy=True), self.goal_version)
        else:
            self.worker.post_goal(np.asarray(goal), self.goal_version)

    def stamp(self, now: float) -> None:
        """Sets the time the current tick's observation was taken."""
        self._now = now

    def command(self, obs: np.ndarray, t: int) -> np.ndarray | None:
        plan = self.worker.plan  # one reference read: the snapshot is immutable
        if plan is None or plan.episode != self.episode:
            self.plan_age_s = float("nan")
            waited = self._now - self._episode_start
            self.status = "waiting" if waited <= self.max_plan_age_s else "no_plan"
            return None
        self.plan_age_s = self._now - max(plan.observed_at, self._episode_start)
        if self.plan_age_s > self.max_plan_age_s:
            self.status = "stale_plan"
            return None
        self.status = "ok"
        return plan.command_at(t)

    def plan_info(self) -> dict[str, Any]:
        plan = self.worker.plan
        return {} if plan is None else {"mean_plan": plan.commands, "plan_step": plan.step}


@dataclass
class AsyncLoopResult:
    """What happened during one :meth:`AsyncControlLoop.run`.

    Attributes:
        observations: ``(N + 1, do)`` observations, the first the starting one.
        actions: ``(N, da)`` actions as sent to the plant.
        rewards: ``(N,)`` plant rewards.
        control_latency_s: ``(N,)`` seconds from observation to action (the control path).
        tick_lateness_s: ``(N,)`` seconds each tick started after its scheduled time.
        plan_age_s: ``(N,)`` age of the plan each tick used, NaN where none was used.
        planner_latency_s: ``(M,)`` seconds per optimization during the run.
        planner_rate_hz: optimizations per second during the run.
        deadline_misses: ticks whose action came after the end of their period, plus skipped
            cycles.
        skipped_cycles: cycles skipped after overruns (included in ``deadline_misses``).
        faults: faults by kind with ``total`` (see :mod:`hrl_runtime.safety`).
        planner_faults: faults inside the planner thread by kind.
        fault_events: the first faults, in order.
        no_plan_ticks: ticks that sent the safe action because no plan existed yet.
        safe_stop: the latched safe stop, if any.
        stop_reason: ``done``, ``terminated``, ``truncated``, ``max_steps``, ``safe_stop`` or
            ``stopped`` (``should_stop`` returned True).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    control_latency_s: np.ndarray
    tick_lateness_s: np.ndarray
    plan_age_s: np.ndarray
    planner_latency_s: np.ndarray
    planner_rate_hz: float
    control_period_s: float
    deadline_misses: int = 0
    skipped_cycles: int = 0
    clipped_steps: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    planner_faults: dict[str, int] = field(default_factory=dict)
    fault_events: list[Fault] = field(default_factory=list)
    no_plan_ticks: int = 0
    safe_stop: SafeStop | None = None
    stop_reason: str = "max_steps"
    wall_time_s: float = 0.0

    @property
    def steps(self) -> int:
        """Control ticks executed."""
        return len(self.actions)

    def summary(self) -> dict[str, Any]:
        """JSON-ready timing and fault summary (milliseconds)."""
        return {
            "steps": self.steps,
            "control_period_ms": self.control_period_s * 1e3,
            "wall_time_s": self.wall_time_s,
            "deadline_misses": self.deadline_misses,
            "skipped_cycles": self.skipped_cycles,
            "control_latency_ms": latency_summary_ms(self.control_latency_s),
            "tick_lateness_ms": latency_summary_ms(self.tick_lateness_s),
            "plan_age_ms": latency_summary_ms(self.plan_age_s),
            "planner_latency_ms": latency_summary_ms(self.planner_latency_s),
            "planner_rate_hz": self.planner_rate_hz,
            "clipped_steps": self.clipped_steps,
            "no_plan_ticks": self.no_plan_ticks,
            "faults": self.faults,
            "planner_faults": self.planner_faults,
            "safe_stop": None if self.safe_stop is None else self.safe_stop.to_json(),
            "stop_reason": self.stop_reason,
        }


class AsyncControlLoop:
    """Runs a skill under a high level whose planning happens in its own thread.

    Lifecycle (after ros2_control): the constructor *configures* (checks, builds the planner
    thread, warms up the control path); :meth:`reset` *activates* an episode (resets the high
    level, waits for the first plan, clears the safe stop); :meth:`tick` is the control update;
    :meth:`close` finalizes (joins the planner thread). :meth:`run` does all of it on a plant.

    Args:
        skill: the low-level controller (runs on the control path).
        high_level: chooses commands; see the module docstring for what runs where.
        config: loop settings.
        action_space: the plant's action space (default: the skill's).
        observation_shape: the shape of observations (default: the skill's).

    Attributes:
        high_level: what runs on the control path (the wrapper, or a :class:`PlanProxy`).
        planner: what runs in the planner thread, or None.
        safety: the :class:`~hrl_runtime.safety.SafetyMonitor`.
        step_count: ticks since the last reset.
    """

    def __init__(
        self,
        skill: Skill,
        high_level: HighLevel,
        config: AsyncLoopConfig | None = None,
        *,
        action_space: Box | None = None,
        observation_shape: tuple[int, ...] | None = None,
    ):
        self.config = config or AsyncLoopConfig()
        self.config.validate()
        self.skill = skill
        self.action_space = action_space if action_space is not None else skill.action_space
        shape = observation_shape or skill.observation_space.shape
        self.safety = SafetyMonitor(self.action_space, shape, self.config.safety)
        self._user_high_level = high_level
        delegate = getattr(high_level, "delegate", _NO_DELEGATE_ATTRIBUTE)
        self._wrapper_delegate = None
        self.worker: PlannerThread | None = None
        self.proxy: PlanProxy | None = None
        if delegate is None:  # a fixed policy wrapper: everything on the control path
            self.planner = None
            self.high_level = high_level
        else:
            self.planner = high_level if delegate is _NO_DELEGATE_ATTRIBUTE else delegate
            self.worker = PlannerThread(
                self.planner,
                skill.hold_steps,
                self.config.planner_period_s,
                nice=self.config.planner_nice,
                rt_priority=self.config.planner_rt_priority,
            )
            self.proxy = PlanProxy(self.worker, self.config.max_plan_age_s)
            if delegate is _NO_DELEGATE_ATTRIBUTE:
                self.high_level = self.proxy
            else:  # the wrapper keeps running here, with the proxy as its delegate
                self._wrapper_delegate = delegate
                high_level.delegate = self.proxy
                self.high_level = high_level
            self.worker.start()
        self.step_count = 0
        self.no_plan_ticks = 0
        self.last_status = "inactive"
        self._active = False
        self._closed = False

    # --- lifecycle -------------------------------------------------------------------------------
    def reset(self, obs: np.ndarray) -> None:
        """Starts an episode from ``obs: (do,)``: resets skill and high level, clears the safe
        stop and the counters, and waits (``first_plan_timeout_s``) for the first plan.

        Raises:
            ValueError: ``obs`` has the wrong shape or is not finite.
            RuntimeError: the loop is closed.
        """
        if self._closed:
            raise RuntimeError("AsyncControlLoop is closed")
        obs = np.asarray(obs)
        if obs.shape != self.safety.observation_shape or not np.isfinite(obs).all():
            raise ValueError(
                f"reset observation must be finite with shape {self.safety.observation_shape}, "
                f"got shape {obs.shape}"
            )
        self.safety.reset()
        self.step_count = 0
        self.no_plan_ticks = 0
        self.skill.reset()
        if self.proxy is not None and self.high_level is not self.proxy:
            self.proxy.reset(obs)  # in case the wrapper does not reset its delegate
        self.high_level.reset(obs)
        if self.proxy is not None:
            self.proxy.commit_episode()
        self._warm_up_control_path(obs)
        if self.worker is not None:
            self._wait_for_first_plan()
            self.worker.reset_stats()
        self._active = True
        self.last_status = "ok"

    def _warm_up_control_path(self, obs: np.ndarray) -> None:
        """Runs the skill once off the clock so that first-call costs fall outside tick 0."""
        command = np.asarray(self.skill.command_space.sample(), np.float32)
        try:
            self.skill.act(obs, command)
        except Exception as error:  # the first real tick reports it as a fault
            logger.warning("skill warm-up raised %s: %s", type(error).__name__, error)
        self.skill.reset()

    def _wait_for_first_plan(self) -> None:
        timeout = self.config.first_plan_timeout_s
        if timeout <= 0:
            return
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            plan = self.worker.plan
            if plan is not None and plan.episode == self.proxy.episode:
                # It was made for the observation the first tick uses: its age starts now.
                self.proxy.start_clock()
                return
            if not self.worker.alive:
                break
            time.sleep(0.001)
        logger.warning(
            "no plan within first_plan_timeout_s=%.1f s (planner faults: %s); the loop starts "
            "with the safe action",
            timeout,
            self.worker.first_error,
        )

    def close(self) -> None:
        """Stops the planner thread and gives the wrapper its delegate back."""
        if self._closed:
            return
        self._closed = True
        self._active = False
        if self.worker is not None:
            self.worker.stop()
        if self._wrapper_delegate is not None:
            self._user_high_level.delegate = self._wrapper_delegate

    def __enter__(self) -> AsyncControlLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the control path ------------------------------------------------------------------------
    def tick(self, obs: np.ndarray, observed_at: float | None = None) -> np.ndarray:
        """One control update: the action ``(da,)`` for ``obs: (do,)``; never raises.

        Call :meth:`end_tick` afterwards with whether the deadline was met.

        Args:
            obs: the observation.
            observed_at: ``time.perf_counter()`` when ``obs`` was taken (default: now).
        """
        step = self.step_count
        safety = self.safety
        safety.begin_tick(step)
        self.step_count = step + 1
        if safety.stopped or not self._active:
            self.last_status = "safe_stop" if safety.stopped else "inactive"
            return safety.stop_action
        obs = np.asarray(obs)
        if not safety.observation_ok(obs):
            self.last_status = "fault"
            return safety.fallback_action()
        now = time.perf_counter() if observed_at is None else observed_at
        if self.worker is not None:
            self.worker.post_observation(obs, step, now)
            self.proxy.stamp(now)
        try:
            command = self.high_level.command(obs, step)
        except Exception as error:
            safety.fault("high_level_exception", f"{type(error).__name__}: {error}")
            self.last_status = "fault"
            return safety.fallback_action()
        if command is None:  # no usable plan (only a PlanProxy returns None)
            status = self.proxy.status
            self.last_status = status
            if status == "waiting":
                self.no_plan_ticks += 1
            else:
                safety.fault(
                    status, f"{status.replace('_', ' ')} (age {self.proxy.plan_age_s:.3f} s)"
                )
            return safety.fallback_action()
        try:
            proposed = self.skill.act(obs, command)
        except Exception as error:
            safety.fault("skill_exception", f"{type(error).__name__}: {error}")
            self.last_status = "fault"
            return safety.fallback_action()
        action = safety.filter_action(proposed)
        self.last_status = "fault" if safety.tick_faulty else "ok"
        return action

    def end_tick(self, missed_deadline: bool = False) -> bool:
        """Closes the tick; returns True when it latched the safe stop."""
        latched = self.safety.end_tick(self.step_count - 1, missed_deadline)
        if latched:
            self.last_status = "safe_stop"
        return latched

    @property
    def done(self) -> bool:
        """True once the high level has finished its task."""
        return bool(self.high_level.done)

    @property
    def plan_age_s(self) -> float:
        """Age of the plan the last tick used, seconds (NaN when none)."""
        return self.proxy.plan_age_s if self.proxy is not None else float("nan")

    # --- running on a plant ----------------------------------------------------------------------
    def run(
        self,
        plant: Plant,
        *,
        max_steps: int,
        seed: int | None = None,
        reset_options: dict | None = None,
        obs: np.ndarray | None = None,
        should_stop: Callable[[int, np.ndarray], bool] | None = None,
        on_step: Callable[[int, np.ndarray, np.ndarray, dict], None] | None = None,
        stop_when_done: bool = True,
    ) -> AsyncLoopResult:
        """Runs an episode on ``plant`` paced to the wall clock.

        Args:
            plant: the environment or robot.
            max_steps: hard limit on control ticks.
            seed: seed of the plant's reset.
            reset_options: options of the plant's reset.
            obs: continue from this observation without resetting the plant (long-horizon
                tasks chain runs this way).
            should_stop: ``should_stop(step, obs)`` after each plant step; True ends the run.
            on_step: ``on_step(step, action, next_obs, info)`` after each plant step, outside
                the timed control path.
            stop_when_done: end the run when the high level reports ``done``.

        Returns:
            The recorded run.
        """
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if obs is None:
            obs, _ = plant.reset(seed=seed, options=reset_options)
        obs = np.asarray(obs)
        # Collect and freeze the heap before the first plan's clock starts (a full collection
        # takes long enough to make a fresh plan stale).
        with _RealtimeSettings(self.config):
            self.reset(obs)
            return self._run(plant, obs, max_steps, should_stop, on_step, stop_when_done)

    def _run(self, plant, obs, max_steps, should_stop, on_step, stop_when_done) -> AsyncLoopResult:
        space = self.action_space
        period = self.config.control_period_s
        observations = np.empty((max_steps + 1, *obs.shape), np.float64)
        actions = np.empty((max_steps, *space.shape), space.dtype)
        rewards = np.zeros(max_steps)
        control_latency = np.empty(max_steps)
        lateness = np.empty(max_steps)
        plan_age = np.full(max_steps, np.nan)
        observations[0] = obs
        deadline_misses = skipped = steps = 0
        stop_reason = "max_steps"
        planned_before = self.worker.plans_made if self.worker else 0

        start_wall = time.perf_counter()
        scheduled = start_wall
        for step in range(max_steps):
            now = time.perf_counter()
            missed = 0
            if now < scheduled:
                time.sleep(scheduled - now)
                now = time.perf_counter()
            elif now - scheduled >= period:
                # Overrun: skip the cycles that were missed; never burst to catch up.
                missed = int((now - scheduled) // period)
                skipped += missed
                deadline_misses += missed
                scheduled += missed * period
            tick_start = now
            action = self.tick(obs, tick_start)
            done_at = time.perf_counter()
            late_action = done_at > scheduled + period
            deadline_misses += late_action
            # A tick after skipped cycles missed its deadline too (for the safe stop count).
            missed_deadline = late_action or missed > 0
            latched = self.end_tick(missed_deadline)
            if latched:
                action = self.safety.stop_action
            control_latency[step] = done_at - tick_start
            lateness[step] = tick_start - scheduled
            plan_age[step] = self.plan_age_s
            scheduled += period
            actions[step] = action
            obs, reward, terminated, truncated, info = plant.step(action)
            obs = np.asarray(obs)
            if info.get("physics_warning"):
                self.safety.begin_tick(step)
                self.safety.fault("physics_warning", str(info["physics_warning"]))
                latched = self.end_tick() or latched
            observations[step + 1] = obs
            rewards[step] = reward
            steps = step + 1
            if on_step is not None:
                on_step(step, action, obs, info)
            if self.safety.stopped:
                stop_reason = "safe_stop"
                break
            if terminated or truncated:
                stop_reason = "terminated" if terminated else "truncated"
                break
            if stop_when_done and self.high_level.done:
                stop_reason = "done"
                break
            if should_stop is not None and should_stop(step, obs):
                stop_reason = "stopped"
                break
        wall = time.perf_counter() - start_wall
        self._active = False
        worker = self.worker
        planner_latency = np.empty(0)
        rate = 0.0
        planner_faults: dict[str, int] = {}
        if worker is not None:
            made = worker.plans_made - planned_before
            planner_latency = worker.latencies.recent()[-made:] if made else np.empty(0)
            rate = made / wall if wall > 0 else 0.0
            planner_faults = dict(worker.faults)
        return AsyncLoopResult(
            observations=observations[: steps + 1],
            actions=actions[:steps],
            rewards=rewards[:steps],
            control_latency_s=control_latency[:steps],
            tick_lateness_s=lateness[:steps],
            plan_age_s=plan_age[:steps],
            planner_latency_s=planner_latency,
            planner_rate_hz=rate,
            control_period_s=period,
            deadline_misses=deadline_misses,
            skipped_cycles=skipped,
            clipped_steps=self.safety.clipped_steps,
            faults=self.safety.faults(),
            planner_faults=planner_faults,
            fault_events=list(self.safety.events),
            no_plan_ticks=self.no_plan_ticks,
            safe_stop=self.safety.safe_stop,
            stop_reason=stop_reason,
            wall_time_s=wall,
        )


class _RealtimeSettings:
    """Process settings for a run: frozen, quiet garbage collector and a short GIL interval."""

    def __init__(self, config: AsyncLoopConfig):
        self.config = config

    def __enter__(self) -> None:
        self._policy = None
        priority = self.config.control_rt_priority
        if priority is not None and hasattr(os, "sched_setscheduler"):
            try:  # pid 0: the calling (control) thread only
                self._policy = (os.sched_getscheduler(0), os.sched_getparam(0))
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            except OSError as error:
                self._policy = None
                logger.warning("SCHED_FIFO for the control thread refused (%s)", error)
        self._interval = sys.getswitchinterval()
        self._gc_was_enabled = gc.isenabled()
        if self.config.switch_interval_s is not None:
            sys.setswitchinterval(self.config.switch_interval_s)
        if self.config.gc_freeze:
            gc.collect()
            gc.freeze()
        if self.config.gc_disable:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._policy is not None:
            os.sched_setscheduler(0, self._policy[0], self._policy[1])
        sys.setswitchinterval(self._interval)
        if self.config.gc_freeze:
            gc.unfreeze()
        if self._gc_was_enabled:
            gc.enable()

"""The asynchronous control loop: a planning thread beside a fixed-rate control path.

The high level's planning part (:meth:`~hrl_runtime.high_level.HighLevel.planning_part`) runs in a
:class:`~hrl_runtime.planner_thread.PlannerThread` and publishes immutable plans; the control path
is the same :class:`~hrl_runtime.engine.ControlPath` as the synchronous loop's, driving a
:class:`~hrl_runtime.agent.HierarchicalAgent` whose high level is what stays on the control path:

- a planner (``planning_part()`` is itself, e.g. :class:`~planners.LatentMPPI`) runs entirely in
  the thread; on the control path a :class:`~hrl_runtime.planner_thread.PlanProxy` stands in;
- a composition wrapper (``planning_part()`` is its delegate, e.g. :class:`~planners.GoalSequence`
  around :class:`~planners.LatentMPPI`) keeps running on the control path and talks to the proxy
  in place of its delegate (:meth:`~hrl_runtime.high_level.HighLevel.replace_delegate`):
  ``set_goal`` posts the goal to the planner (a versioned single-slot mailbox, applied between two
  optimizations, never during one), ``command`` reads the latest plan. Goal bookkeeping (reached?
  next goal?) therefore happens every tick on the control thread, and the planner only ever sees
  whole goals;
- a high level with nothing to plan (``planning_part()`` is None, e.g. a bare goal sequence) runs
  entirely on the control path, with no planner thread.

The control path, per tick (after ros2_control's update and libfranka's reflexes): check the
observation; read the plan (none yet: the safe action; older than ``max_plan_age_s``: fall back
and count a fault); run the skill (raises or returns NaN/inf: fall back in the same tick); clip.
``safe_stop_after`` consecutive faulty ticks (faults or missed deadlines) latch a safe stop that
only :meth:`AsyncControlLoop.reset` clears. Pacing follows the wall clock; an overrun skips the
missed cycles (no catch-up burst) and counts them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium.spaces import Box

from hrl_runtime.agent import HierarchicalAgent
from hrl_runtime.engine import ControlPath, EpisodeOptions, Plant, latency_summary_ms, run_episode
from hrl_runtime.high_level import HighLevel
from hrl_runtime.planner_thread import Plan, PlannerThread, PlanProxy
from hrl_runtime.realtime import RealtimeSettings
from hrl_runtime.safety import Fault, SafeStop, SafetyConfig, SafetyMonitor
from hrl_runtime.skill import Skill
from hrl_runtime.threads import ThreadPools, planner_threads, pool_report

logger = logging.getLogger(__name__)

__all__ = [
    "AsyncControlLoop",
    "AsyncLoopConfig",
    "AsyncLoopResult",
    "Plan",
    "PlanProxy",
    "PlannerThread",
]


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
    record_plan_info: bool = False
    """Attach the planner's ``plan_info()`` to every published plan (for plots; costs the
    planner thread a little time after each optimization, outside its latency)."""
    planner_threads: int | None = None
    """numba threads of the planner thread; None: one fewer than the usable cores (at least 1),
    so the control thread always keeps a core. BLAS and torch pools run with one thread while
    the loop is open (see :mod:`hrl_runtime.threads`)."""
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
    threads: dict[str, Any] = field(default_factory=dict)
    """The thread pools of the run: the process's (:func:`~hrl_runtime.threads.pool_report`) and
    the planner thread's numba threads (``planner_numba``)."""

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
            "mode": "async",
            "threads": self.threads,
        }


class AsyncControlLoop:
    """Runs a skill under a high level whose planning happens in its own thread.

    Lifecycle (after ros2_control): the constructor *configures* (checks, builds the planner
    thread); :meth:`reset` *activates* an episode (resets the high level, warms up the control
    path, waits for the first plan, clears the safe stop); :meth:`tick` is the control update;
    :meth:`close` finalizes (joins the planner thread). :meth:`run` does all of it on a plant.

    Args:
        skill: the low-level controller (runs on the control path).
        high_level: chooses commands; see the module docstring for what runs where.
        config: loop settings.
        action_space: the plant's action space (default: the skill's).
        observation_shape: the shape of observations (default: the skill's).

    Attributes:
        high_level: what runs on the control path (the wrapper, or a
            :class:`~hrl_runtime.planner_thread.PlanProxy`).
        planner: what runs in the planner thread, or None.
        safety: the :class:`~hrl_runtime.safety.SafetyMonitor`.
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
        self._wrapper_delegate: HighLevel | None = None
        self.planner = high_level.planning_part()
        self.worker: PlannerThread | None = None
        self.proxy: PlanProxy | None = None
        self.high_level = high_level
        if self.planner is not None:
            self.worker = PlannerThread(
                self.planner,
                skill.hold_steps,
                self.config.planner_period_s,
                nice=self.config.planner_nice,
                rt_priority=self.config.planner_rt_priority,
                threads=planner_threads(asynchronous=True, requested=self.config.planner_threads),
                record_info=self.config.record_plan_info,
            )
            self.proxy = PlanProxy(self.worker, self.config.max_plan_age_s)
            if self.planner is high_level:
                self.high_level = self.proxy
            else:  # the wrapper keeps running here, with the proxy as its delegate
                self._wrapper_delegate = high_level.replace_delegate(self.proxy)
            self.worker.start()
        self.agent = HierarchicalAgent(self.high_level, skill)
        self.path = ControlPath(self.agent, self.safety, self._post if self.worker else None)
        self._closed = False
        # BLAS and torch pools at one thread from configure to close (the host's come back then).
        self._pools = ThreadPools(blas=1, torch=1).__enter__()

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
        if self.proxy is not None and self.high_level is not self.proxy:
            self.proxy.reset(obs)  # in case the wrapper does not reset its delegate
        self.path.start_episode(obs)  # resets the skill and the high level
        if self.proxy is not None:
            self.proxy.commit_episode()
        self._warm_up_control_path(obs)
        if self.worker is not None:
            self._wait_for_first_plan()
            self.worker.reset_stats()

    def _post(self, obs: np.ndarray, step: int, observed_at: float) -> None:
        """Hands each checked observation to the planner thread and dates the tick."""
        self.worker.post_observation(obs, step, observed_at)
        self.proxy.stamp(observed_at)

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
        self.path.active = False
        if self.worker is not None:
            self.worker.stop()
        if self._wrapper_delegate is not None:
            self._user_high_level.replace_delegate(self._wrapper_delegate)
        self._pools.__exit__(None, None, None)

    def thread_report(self) -> dict[str, Any]:
        """The pools in effect (:func:`~hrl_runtime.threads.pool_report`) and the planner
        thread's numba threads (``planner_numba``, None without a planner thread)."""
        worker = self.worker
        return {**pool_report(), "planner_numba": worker.threads_in_use if worker else None}

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
        return self.path.tick(obs, time.perf_counter() if observed_at is None else observed_at)

    def end_tick(self, missed_deadline: bool = False) -> bool:
        """Closes the tick; returns True when it latched the safe stop."""
        return self.path.end_tick(missed_deadline)

    @property
    def step_count(self) -> int:
        """Ticks since the last reset."""
        return self.path.step_count

    @property
    def last_status(self) -> str:
        """What the last tick did (see :class:`~hrl_runtime.engine.ControlPath`)."""
        return self.path.status

    @property
    def no_plan_ticks(self) -> int:
        """Ticks that sent the safe action because no plan existed yet."""
        return self.path.no_plan_ticks

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
        options = EpisodeOptions(self.config.control_period_s, stop_when_done=stop_when_done)
        # Collect and freeze the heap before the first plan's clock starts (a full collection
        # takes long enough to make a fresh plan stale).
        with RealtimeSettings(self.config):
            self.reset(obs)
            planned_before = self.worker.plans_made if self.worker else 0
            record = run_episode(
                self.path,
                plant,
                obs,
                max_steps,
                options,
                plan_age=lambda: self.plan_age_s,
                should_stop=should_stop,
                on_step=on_step,
            )
        return self._result(record, planned_before)

    def _result(self, record: Any, planned_before: int) -> AsyncLoopResult:
        worker = self.worker
        planner_latency = np.empty(0)
        rate = 0.0
        planner_faults: dict[str, int] = {}
        if worker is not None:
            made = worker.plans_made - planned_before
            planner_latency = worker.latencies.recent()[-made:] if made else np.empty(0)
            rate = made / record.wall_time_s if record.wall_time_s > 0 else 0.0
            planner_faults = dict(worker.faults)
        return AsyncLoopResult(
            observations=record.observations,
            actions=record.actions,
            rewards=record.rewards,
            control_latency_s=record.control_latency_s,
            tick_lateness_s=record.tick_lateness_s,
            plan_age_s=record.plan_age_s,
            planner_latency_s=planner_latency,
            planner_rate_hz=rate,
            control_period_s=self.config.control_period_s,
            deadline_misses=record.deadline_misses,
            skipped_cycles=record.skipped_cycles,
            clipped_steps=self.safety.clipped_steps,
            faults=self.safety.faults(),
            planner_faults=planner_faults,
            fault_events=list(self.safety.events),
            no_plan_ticks=self.path.no_plan_ticks,
            safe_stop=self.safety.safe_stop,
            stop_reason=record.stop_reason,
            wall_time_s=record.wall_time_s,
            threads=self.thread_report(),
        )

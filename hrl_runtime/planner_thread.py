"""The planner thread of the asynchronous loop, the immutable plans it publishes, and the stand-in
that the control path talks to instead of the planner.

After MuJoCo MPC's agent: the high level optimizes in its own thread and publishes each finished
plan as an immutable :class:`Plan` (a copy of the nominal commands plus the control step and the
episode it was made for). Publishing is one reference assignment under a lock held only for that
swap, so the control path never waits on the planner and never reads planner buffers that
``optimize()`` is mutating. numba kernels run with ``nogil=True``, so the two threads run in
parallel.

Warm start is explicit: before each optimization the thread tells the planner how many control
steps ran since the observation of its previous plan
(:meth:`~hrl_runtime.high_level.HighLevel.advance`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

import kernels
from hrl_runtime.high_level import HighLevel, PlanUnavailable

logger = logging.getLogger(__name__)


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
    info: dict[str, Any] | None = None
    """The planner's ``plan_info()`` for this plan, when the thread records it (for plots)."""

    def command_at(self, step: int) -> np.ndarray:
        """The command ``(dc,)`` for control step ``step``."""
        index = (step - self.step) // self.hold_steps
        return self.commands[min(max(index, 0), len(self.commands) - 1)]


def nominal_commands(planner: HighLevel, obs: np.ndarray, step: int) -> np.ndarray:
    """A read-only copy of ``planner``'s current plan as ``(T, dc)`` commands.

    A planner that keeps a nominal plan (:meth:`~hrl_runtime.high_level.HighLevel.nominal_plan`)
    publishes all T entries; any other high level publishes its command for ``step``, held.
    """
    plan = planner.nominal_plan()
    if plan is not None:
        commands = np.array(plan, copy=True).reshape(len(plan), -1)
    else:
        commands = np.array(planner.command(obs, step), copy=True).reshape(1, -1)
    commands.setflags(write=False)
    return commands


class Ring:
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
        rt_priority: SCHED_FIFO priority of the thread (Linux), or None.
        threads: numba threads the planner's kernels use in this thread (None: leave them).
        record_info: attach the planner's ``plan_info()`` to every plan (after the latency is
            taken; for plots of what was planned).
    """

    def __init__(
        self,
        planner: HighLevel,
        hold_steps: int,
        min_period_s: float,
        nice: int = 0,
        rt_priority: int | None = None,
        threads: int | None = None,
        record_info: bool = False,
    ):
        self.planner = planner
        self.record_info = record_info
        self.threads = threads
        self.threads_in_use: int | None = None
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
        self.latencies = Ring(100_000)
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

    def _plan_info(self) -> dict[str, Any] | None:
        try:
            return self.planner.plan_info()
        except Exception as error:  # a display problem never stops planning
            self._fault("plan_info_exception", f"{type(error).__name__}: {error}")
            return None

    def _fault(self, kind: str, detail: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1
        if self.first_error is None:
            self.first_error = f"{kind}: {detail}"
            logger.warning("planner fault (%s): %s", kind, detail)

    def _run(self) -> None:
        self._set_priority()
        if self.threads is not None:  # numba's thread count is per thread: set it here
            kernels.set_threads(self.threads)
        self.threads_in_use = kernels.get_threads()
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
                if planned_step >= 0 and step > planned_step:
                    self.planner.advance(step - planned_step)  # warm start: steps that ran
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
            info = self._plan_info() if self.record_info else None
            plan = Plan(
                commands, step, observed_at, episode, goal_version, self.hold_steps, latency, info
            )
            with self._lock:
                if self._episode == episode:
                    self.plan = plan
            self._wake.set()  # plan again from the newest observation


class PlanProxy(HighLevel):
    """Stands in for a planner that runs in a :class:`PlannerThread`, on the control path.

    ``command`` returns the latest plan's command, or raises
    :class:`~hrl_runtime.high_level.PlanUnavailable` (and sets ``status``) when there is no usable
    plan: ``"waiting"`` (none yet, still within the staleness limit), ``"no_plan"`` or
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

    def command(self, obs: np.ndarray, t: int) -> np.ndarray:
        plan = self.worker.plan  # one reference read: the snapshot is immutable
        if plan is None or plan.episode != self.episode:
            self.plan_age_s = float("nan")
            waited = self._now - self._episode_start
            self.status = "waiting" if waited <= self.max_plan_age_s else "no_plan"
            raise PlanUnavailable(self.status)
        self.plan_age_s = self._now - max(plan.observed_at, self._episode_start)
        if self.plan_age_s > self.max_plan_age_s:
            self.status = "stale_plan"
            raise PlanUnavailable(self.status, self.plan_age_s)
        self.status = "ok"
        return plan.command_at(t)

    def plan_info(self) -> dict[str, Any]:
        plan = self.worker.plan
        return {} if plan is None else {"mean_plan": plan.commands, "plan_step": plan.step}

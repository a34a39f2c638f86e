"""Goal following: a skill, a high level and an environment run together in the ControlLoop.

This is the task runner behind ``hrl follow`` and ``hrl demo``: it checks that the pieces fit,
validates the goals, runs the loop, and reports per-goal results with the loop's timing.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hrl_runtime import checks
from hrl_runtime.agent import HierarchicalAgent
from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig, AsyncLoopResult
from hrl_runtime.errors import ConfigError
from hrl_runtime.loop import ControlLoop, LoopConfig, LoopResult
from hrl_runtime.skill import Skill, check_compatible

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FollowConfig:
    """Configuration of :func:`follow_goals`."""

    success_radius: float = 0.5
    """A goal counts as reached within this distance, metres."""
    steps_per_goal: int = 1000
    """Control steps allowed per goal before moving on."""
    asynchronous: bool = True
    """Run the planner in its own thread beside a control loop paced to the wall clock (the
    runtime's mode on a robot); False: the synchronous loop, planning inline on the control
    thread (deterministic: for tests and replays)."""
    realtime: bool = False
    """Synchronous mode only: pace the loop to the wall clock instead of running as fast as the
    simulation allows (the asynchronous loop always follows the wall clock)."""
    seed: int = 0
    """Seed of the environment reset and of the planner."""
    threads: int | None = None
    """numba threads of the planner (None: every core inline, one fewer beside the control
    thread)."""
    reset_each_goal: bool = False
    """Attempt every goal from a reset of the plant (goals given relative to the start, as
    Ant's are) instead of one after another along one path."""


@dataclass
class FollowReport:
    """The outcome of one goal-following run."""

    env_id: str
    skill: str
    planner: str
    seed: int
    goals: np.ndarray
    summary: dict[str, Any]
    loop: LoopResult | AsyncLoopResult
    xy_indices: tuple[int, int]
    plans: list[dict[str, np.ndarray]] = field(default_factory=list)
    steps_per_goal: int = 0
    """The budget each goal had, control steps."""
    success_radius: float = 0.5
    """The distance within which a goal counted as reached, metres."""
    segment_starts: list[int] = field(default_factory=lambda: [0])
    """Indices into the observations where the plant was reset (after a fall, or before each
    goal with ``reset_each_goal``)."""
    fall_indices: list[int] = field(default_factory=list)
    """Indices into the observations where the body fell."""
    perturbation: str | None = None
    """The body the run used when it was perturbed (``NAME=VALUE,...``)."""
    adaptation: dict[str, Any] | None = None
    """The online adapter's report (time per adaptation, errors before and after) when the
    dynamics adapted online."""

    @property
    def falls(self) -> int:
        """Goals that ended because the body fell (the plant terminated)."""
        return sum(bool(goal.get("fell")) for goal in self.summary["goals"])

    @property
    def trajectory(self) -> np.ndarray:
        """``(N + 1, 2)`` x-y positions visited, metres."""
        return self.loop.observations[:, list(self.xy_indices)]

    def to_json(self) -> dict[str, Any]:
        """One JSON object: per-goal results, success rate, timing and faults."""
        loop = self.loop.summary()
        return {
            "env": self.env_id,
            "skill": self.skill,
            "planner": self.planner,
            "seed": self.seed,
            "steps_per_goal": self.steps_per_goal,
            "success_radius": self.success_radius,
            "goals": self.summary["goals"],
            "success_rate": self.summary["success_rate"],
            "falls": self.falls,
            "resets": len(self.segment_starts) - 1,
            "mean_normalized_distance": _mean_or_none(
                [g["normalized_distance"] for g in self.summary["goals"]]
            ),
            "control_period_ms": loop["control_period_ms"],
            "control_latency_ms": loop["control_latency_ms"],
            "planner_latency_ms": loop["planner_latency_ms"],
            "deadline_misses": loop["deadline_misses"],
            "plan_age_ms": loop.get("plan_age_ms"),
            "mode": loop["mode"],
            "threads": loop["threads"],
            "faults": loop["faults"]["total"],
            "fault_kinds": {k: v for k, v in loop["faults"].items() if k != "total"},
            "steps": loop["steps"],
            "stop_reason": loop["stop_reason"],
            "perturbation": self.perturbation,
            "adaptation": self.adaptation,
        }


def _mean_or_none(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def parse_goals(text: str) -> np.ndarray:
    """Parses ``"x,y;x,y;..."`` into ``(N, 2)`` metres: at most ``MAX_GOALS`` goals of finite
    coordinates within ``±MAX_MAGNITUDE``.

    Raises:
        ConfigError: naming the malformed entry.
    """
    if len(text) > 40 * checks.MAX_GOALS:
        raise ConfigError(f"--goals is {len(text):,} characters long; give at most "
                          f"{checks.MAX_GOALS} goals")  # fmt: skip
    parts = [p for p in text.split(";") if p.strip()]
    if len(parts) > checks.MAX_GOALS:
        raise ConfigError(f"--goals gives {len(parts)} goals; give at most {checks.MAX_GOALS}")
    goals = []
    for index, part in enumerate(parts):
        if len(part.split(",")) != 2:
            raise ConfigError(
                f"goal {index + 1} {checks.shorten(part.strip())} is not 'x,y'; write goals as "
                '--goals "x,y;x,y" (metres)'
            )
        goals.append(checks.coordinates(part, f"--goals: goal {index + 1}", 2))
    if not goals:
        raise ConfigError('no goals given; write goals as --goals "x,y;x,y" (metres)')
    return np.asarray(goals, np.float64)


def validate_goals(goals: np.ndarray, goal_space: Any, env_id: str) -> None:
    """Refuses goals the environment's goal space does not contain.

    Raises:
        ConfigError: naming the first bad goal and why.
    """
    if goal_space is None:
        return
    for index, goal in enumerate(goals):
        reason = goal_space.why_not(goal)
        if reason:
            raise ConfigError(
                f"goal {index + 1} ({goal[0]:g}, {goal[1]:g}) is not reachable in {env_id}: "
                f"{reason}; choose goals in free space"
            )


def follow_goals(
    skill: Skill,
    high_level: Any,
    env: Any,
    *,
    env_id: str,
    planner: str,
    goals: np.ndarray,
    xy_indices: tuple[int, int],
    config: FollowConfig,
    control_period_s: float,
    record_plans_every: int = 0,
    frame_every: int = 0,
    frames: list[np.ndarray] | None = None,
    progress: bool = False,
    make_high_level: Callable[[np.ndarray], Any] | None = None,
) -> FollowReport:
    """Runs ``high_level`` (a :class:`~planners.GoalSequence`) and ``skill`` on ``env``.

    A run whose plant terminates (a legged body fell: its torso left the healthy range) ends
    the current goal as failed with ``fell: true``; the remaining goals go on from a reset of
    the plant, under a new sequence from ``make_high_level`` (without one, they stay
    unattempted).

    Args:
        skill: the low-level controller.
        high_level: a goal sequence (possibly wrapping a planner) over ``goals``, exposing
            ``summary()`` and ``index`` (the goal it pursues).
        env: the plant.
        env_id: its id, for the report.
        planner: the planner's name, for the report.
        goals: ``(N, 2)`` goals in metres.
        xy_indices: observation entries holding x-y.
        config: run configuration.
        control_period_s: the control period (the plant's time step).
        record_plans_every: keep the plan (predicted trajectory and best samples) of every
            n-th replanning (asynchronous: of plans ``n * hold_steps`` control steps apart), read
            after the step so that recording does not count as latency.
        frame_every: render the plant every n-th step into ``frames`` (0: never).
        frames: where rendered frames go.
        progress: show goals done on a progress bar (stderr).
        make_high_level: builds a fresh goal sequence for ``(M, 2)`` goals: the remaining goals
            after a fall, or each goal with ``config.reset_each_goal``.

    Returns:
        The report with per-goal results and the loop record (of every segment, joined).

    Raises:
        ConfigError: ``config.reset_each_goal`` without ``make_high_level``.
    """
    check_compatible(skill, env, env_id)
    if config.reset_each_goal and make_high_level is None:
        raise ConfigError("follow_goals: reset_each_goal needs make_high_level")
    goals = np.asarray(goals)
    bar = tqdm(total=len(goals), unit="goal", desc="goals", disable=not progress, file=sys.stderr)
    recorder = _PlanRecorder(record_plans_every, env, frame_every, frames, bar, high_level)
    records, results, falls = _follow_segments(
        skill, high_level, env, goals, config, control_period_s, recorder, make_high_level
    )
    bar.update(len(goals) - bar.n)
    bar.close()
    reached = sum(record["reached"] for record in records)
    return FollowReport(
        env_id=env_id,
        skill=skill.name or type(skill).__name__,
        planner=planner,
        seed=config.seed,
        goals=goals,
        summary={"goals": records, "success_rate": reached / len(goals)},
        loop=join_results(results),
        xy_indices=tuple(xy_indices),
        plans=recorder.plans,
        steps_per_goal=config.steps_per_goal,
        success_radius=config.success_radius,
        segment_starts=_segment_starts(results),
        fall_indices=falls,
    )


def _follow_segments(skill, high_level, env, goals, config, control_period_s, recorder, make):
    """Runs the goals in segments, each from a reset of the plant: one for all of them (or one
    per goal with ``reset_each_goal``), and a new one after each fall.

    Returns:
        The goal records (each with ``fell``), the loop record of each segment, and the indices
        into the joined observations where the body fell.
    """
    records: list[dict[str, Any]] = []
    results: list[LoopResult | AsyncLoopResult] = []
    falls: list[int] = []
    first = 0
    while first < len(goals):
        last = first + 1 if config.reset_each_goal else len(goals)
        if first > 0 or config.reset_each_goal:
            high_level = make(goals[first:last]) if make else None
        if high_level is None:
            records.extend(_unattempted(goals[first:]))
            break
        recorder.begin(high_level, done=first)
        seed = config.seed + len(results)
        max_steps = config.steps_per_goal * (last - first) + 1
        result = _run_segment(
            skill, high_level, env, config, control_period_s, recorder, seed, max_steps
        )
        results.append(result)
        segment = high_level.summary()["goals"]
        index = getattr(high_level, "index", len(segment))
        fell = result.stop_reason == "terminated" and index < len(segment)
        ended = index if fell else len(segment) - 1
        for position, record in enumerate(segment[: ended + 1]):
            records.append({**record, "fell": fell and position == ended})
        if fell:
            logger.info("goal %d: the body fell; the plant is reset", first + ended + 1)
            falls.append(sum(len(r.observations) for r in results) - 1)
        first += ended + 1
    return records, results, falls


def _run_segment(skill, high_level, env, config, control_period_s, recorder, seed, max_steps):
    """One loop run of ``high_level`` from a reset with ``seed``, until its goals are done,
    ``max_steps`` are spent or the plant terminates."""
    if config.asynchronous:
        loop_config = AsyncLoopConfig(
            control_period_s=control_period_s,
            record_plan_info=bool(recorder.every),
            planner_threads=config.threads,
        )
        with AsyncControlLoop(skill, high_level, loop_config) as loop:
            recorder.loop = loop
            return loop.run(env, max_steps=max_steps, seed=seed, on_step=recorder)
    agent = HierarchicalAgent(high_level, skill)
    recorder.agent = agent
    loop_config = LoopConfig(
        control_period_s=control_period_s, realtime=config.realtime, threads=config.threads
    )
    return ControlLoop(loop_config).run(
        agent, env, max_steps=max_steps, seed=seed, on_step=recorder.sync_step
    )


def _segment_starts(results: list[Any]) -> list[int]:
    """Where each run's observations begin in the joined record."""
    lengths = [len(result.observations) for result in results]
    return [int(v) for v in np.cumsum([0, *lengths[:-1]])]


def _unattempted(goals: np.ndarray) -> list[dict[str, Any]]:
    """Records of goals a run never got to (a fall with no way to build a new sequence)."""
    return [
        {
            "goal": [float(v) for v in goal],
            "reached": False,
            "final_distance": None,
            "min_distance": None,
            "normalized_distance": None,
            "steps": 0,
            "fell": False,
        }
        for goal in goals
    ]


def join_results(results: list[Any]) -> Any:
    """One loop record of several runs in order: arrays and lists concatenated, counts summed,
    fault counts merged; the rate is the mean weighted by wall time; the rest from the last run.

    Args:
        results: ``LoopResult`` or ``AsyncLoopResult`` records of one kind, at least one.
    """
    if len(results) == 1:
        return results[0]
    joined: dict[str, Any] = {}
    for item in dataclasses.fields(results[0]):
        values = [getattr(result, item.name) for result in results]
        if isinstance(values[0], np.ndarray):
            joined[item.name] = np.concatenate(values)
        elif isinstance(values[0], list):
            joined[item.name] = [v for value in values for v in value]
        elif item.name == "faults" or item.name == "planner_faults":
            counts: dict[str, int] = {}
            for value in values:
                for kind, count in value.items():
                    counts[kind] = counts.get(kind, 0) + count
            joined[item.name] = counts
        elif item.name == "planner_rate_hz":
            walls = [max(getattr(r, "wall_time_s", 1.0), 1e-9) for r in results]
            joined[item.name] = float(np.average(values, weights=walls))
        elif isinstance(values[0], int | float) and item.name != "control_period_s":
            joined[item.name] = type(values[0])(sum(values))
        elif item.name == "safe_stop":
            joined[item.name] = next((v for v in values if v is not None), None)
        else:
            joined[item.name] = values[-1]
    return type(results[0])(**joined)


class _PlanRecorder:
    """After each plant step, outside the timed control path: keeps every n-th plan a run made
    (its predicted trajectory and best samples), renders frames, and moves the goal bar.

    Args:
        every: keep every n-th plan (0: none).
        env: the plant, for frames.
        frame_every: render every n-th step (0: never).
        frames: where frames go.
        bar: the progress bar of goals done.
        sequence: what advances through the goals (its ``index``).
    """

    def __init__(self, every, env, frame_every, frames, bar, sequence):
        self.every, self.env, self.frame_every, self.frames = every, env, frame_every, frames
        self.bar, self.sequence = bar, sequence
        self.plans: list[dict[str, np.ndarray]] = []
        self.replans = 0
        self.loop: AsyncControlLoop | None = None
        self.agent: HierarchicalAgent | None = None
        self._kept_step: int | None = None  # control step of the last kept plan (async)
        self._goals_before = 0  # goals of earlier segments (the bar counts every goal)

    def begin(self, sequence: Any, done: int) -> None:
        """Follows a new segment's goal sequence, ``done`` goals into the run."""
        self.sequence, self._goals_before, self._kept_step = sequence, done, None

    def sync_step(self, step: int, action: np.ndarray, obs: np.ndarray) -> None:
        if self.every and np.isfinite(self.agent.last_planner_latency_s):
            if self.replans % self.every == 0:
                self._keep(self.sequence.plan_info())
            self.replans += 1
        self._after_step(step)

    def __call__(self, step: int, action: np.ndarray, obs: np.ndarray, info: dict) -> None:
        # The planner thread plans as often as it can: keep plans made at least every * hold_steps
        # control steps apart, as the synchronous loop's every n-th replanning would be.
        plan = self.loop.worker.plan if self.loop.worker is not None else None
        if self.every and plan is not None:
            spacing = self.every * self.loop.skill.hold_steps
            if self._kept_step is None or plan.step - self._kept_step >= spacing:
                self._kept_step = plan.step
                self._keep(plan.info or {})
        self._after_step(step)

    def _keep(self, info: dict[str, Any]) -> None:
        if "trajectory" in info:
            self.plans.append(
                {
                    "trajectory": np.asarray(info["trajectory"]),
                    "samples": np.asarray(info.get("samples", np.empty((0,)))),
                    "goal_dims": np.asarray(info.get("goal_dims", (0, 1))),
                }
            )

    def _after_step(self, step: int) -> None:
        done = self._goals_before + getattr(self.sequence, "index", 0)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)
        if self.frame_every and self.frames is not None and step % self.frame_every == 0:
            self.frames.append(self.env.render())


PLAN_LABELS = {"mppi": "MPPI plans (predicted)", "chaining": "subgoal chains (planned)"}
"""Legend of the plans each planner records (``plan_info()["trajectory"]``)."""


def plot_follow(report: FollowReport, path: Path | str, layout: Any = None, radius: float = 0.5):
    """Writes a PNG: walls (if a layout is given), goals, the trajectory, and any plans."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    fig, ax = plt.subplots(figsize=(6.4, 6.4), dpi=110)
    if layout is not None:
        for xmin, ymin, xmax, ymax in layout.wall_boxes():
            ax.add_patch(Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, color="0.35", lw=0))
    trajectory = report.trajectory
    ends = [*report.segment_starts[1:], len(trajectory)]
    for index, plan in enumerate(report.plans):
        dims = list(plan["goal_dims"])
        samples = plan["samples"]
        if samples.ndim == 3 and samples.size:
            ax.plot(*samples[:, :, dims].transpose(2, 1, 0), color="tab:orange", alpha=0.08, lw=0.6)
        mean = plan["trajectory"][:, dims]
        label = None
        if index == 0:
            label = PLAN_LABELS.get(report.planner, f"{report.planner} plans")
        ax.plot(mean[:, 0], mean[:, 1], color="tab:red", alpha=0.5, lw=0.9, label=label)
    for index, (begin, end) in enumerate(zip(report.segment_starts, ends, strict=True)):
        part = trajectory[begin:end]  # the plant was reset between segments: no line across
        label = "trajectory" if index == 0 else None
        ax.plot(part[:, 0], part[:, 1], color="tab:blue", lw=1.6, label=label)
    for index, fall in enumerate(report.fall_indices):
        ax.plot(*trajectory[fall], "rx", ms=8, label="fall" if index == 0 else None)
    ax.plot(*trajectory[0], "ks", ms=7, label="start")
    for index, (goal, record) in enumerate(zip(report.goals, report.summary["goals"], strict=True)):
        color = "tab:green" if record["reached"] else "tab:red"
        ax.add_patch(Circle(goal, radius, fill=False, color=color, lw=1.5))
        ax.annotate(str(index + 1), goal, ha="center", va="center", fontsize=8, color=color)
    ax.set_aspect("equal")
    loop = report.loop.summary()
    ax.set_title(
        f"{report.skill} + {report.planner} on {report.env_id}\n"
        f"success {report.summary['success_rate']:.0%}, {loop['steps']} steps, "
        f"control p99 {loop['control_latency_ms']['p99']:.2f} ms",
        fontsize=9,
    )
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    logger.info("wrote %s", path)
    return Path(path)

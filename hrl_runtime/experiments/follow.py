"""Goal following: a skill, a high level and an environment run together in the ControlLoop.

This is the task runner behind ``hrl follow`` and ``hrl demo``: it checks that the pieces fit,
validates the goals, runs the loop, and reports per-goal results with the loop's timing.
"""

from __future__ import annotations

import logging
import sys
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
            "goals": self.summary["goals"],
            "success_rate": self.summary["success_rate"],
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
) -> FollowReport:
    """Runs ``high_level`` (a :class:`~planners.GoalSequence`) and ``skill`` on ``env``.

    Args:
        skill: the low-level controller.
        high_level: a goal sequence (possibly wrapping a planner), exposing ``summary()``.
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

    Returns:
        The report with per-goal results and the loop record.
    """
    check_compatible(skill, env, env_id)
    bar = tqdm(total=len(goals), unit="goal", desc="goals", disable=not progress, file=sys.stderr)
    recorder = _PlanRecorder(record_plans_every, env, frame_every, frames, bar, high_level)
    max_steps = config.steps_per_goal * len(goals) + 1
    if config.asynchronous:
        loop_config = AsyncLoopConfig(
            control_period_s=control_period_s,
            record_plan_info=bool(record_plans_every),
            planner_threads=config.threads,
        )
        with AsyncControlLoop(skill, high_level, loop_config) as loop:
            recorder.loop = loop
            result = loop.run(env, max_steps=max_steps, seed=config.seed, on_step=recorder)
    else:
        agent = HierarchicalAgent(high_level, skill)
        recorder.agent = agent
        loop_config = LoopConfig(
            control_period_s=control_period_s, realtime=config.realtime, threads=config.threads
        )
        result = ControlLoop(loop_config).run(
            agent, env, max_steps=max_steps, seed=config.seed, on_step=recorder.sync_step
        )
    bar.close()
    plans = recorder.plans
    return FollowReport(
        env_id=env_id,
        skill=skill.name or type(skill).__name__,
        planner=planner,
        seed=config.seed,
        goals=np.asarray(goals),
        summary=high_level.summary(),
        loop=result,
        xy_indices=tuple(xy_indices),
        plans=plans,
        steps_per_goal=config.steps_per_goal,
    )


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
        done = getattr(self.sequence, "index", 0)
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
    ax.plot(trajectory[:, 0], trajectory[:, 1], color="tab:blue", lw=1.6, label="trajectory")
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

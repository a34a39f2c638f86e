"""Runs a validated task file (:mod:`hrl_runtime.taskfiles.spec`) in the asynchronous control loop,
step by step, on one plant, and plots the run."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.errors import ConfigError, IncompatibleError
from hrl_runtime.registry import load_skill
from hrl_runtime.skill import check_compatible
from hrl_runtime.taskfiles.spec import ABORT, END, NEXT, Task, TaskStep

logger = logging.getLogger(__name__)


@dataclass
class StepReport:
    """How one executed step went."""

    id: str
    skill: str
    high_level: str
    reached: bool
    outcome: str
    """``reached``, ``duration``, ``timeout``, ``safe_stop``, ``terminated`` or ``error``."""
    time_s: float
    steps: int
    goals: list[dict[str, Any]]
    faults: dict[str, int]
    deadline_misses: int
    control_latency_ms: dict[str, Any]
    planner_rate_hz: float
    safe_stop: dict[str, Any] | None
    trajectory: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 2)))

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("trajectory")
        return data


@dataclass
class TaskReport:
    """How a whole task went."""

    task: Task
    steps: list[StepReport]
    success: bool
    reason: str
    time_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.name,
            "file": str(self.task.path),
            "env": self.task.env,
            "success": self.success,
            "reason": self.reason,
            "time_s": self.time_s,
            "total_steps": sum(s.steps for s in self.steps),
            "deadline_misses": sum(s.deadline_misses for s in self.steps),
            "faults": sum(s.faults.get("total", 0) for s in self.steps),
            "path": [s.id for s in self.steps],
            "steps": [s.to_json() for s in self.steps],
        }


class _Resources:
    """Skills and planners loaded once per task run (a planner is reset between steps)."""

    def __init__(self, task: Task):
        self.task = task
        self.skills: dict[str, Any] = {}
        self.planners: dict[tuple, Any] = {}

    def skill(self, step: TaskStep) -> Any:
        if step.skill not in self.skills:
            self.skills[step.skill] = load_skill(step.skill)
        return self.skills[step.skill]

    def high_level(self, step: TaskStep, xy: tuple[int, int], period: float) -> Any:
        from planners import GoalSequence, MPPIConfig, SequenceConfig, build_goal_follower

        skill = self.skill(step)
        budget = max(1, round(step.timeout_s / period))
        config = SequenceConfig(step.radius, budget)
        if step.high_level != "mppi":
            return build_goal_follower(step.high_level, skill, step.goals, xy, config)
        key = (step.skill, tuple(sorted(step.mppi.items())))
        if key not in self.planners:
            mppi = dataclasses.replace(MPPIConfig(seed=self.task.seed), **step.mppi)
            sequence = build_goal_follower("mppi", skill, step.goals, xy, config, mppi=mppi)
            self.planners[key] = sequence.delegate
            return sequence
        return GoalSequence(step.goals, xy, config, delegate=self.planners[key])


def _make_task_env(task: Task, total_ticks: int) -> Any:
    import envs

    try:
        return envs.make_env(task.env, max_episode_steps=total_ticks)
    except ValueError as error:
        raise ConfigError(f"{task.path}: [task]: field 'env': {error}") from None


def run_task(
    task: Task,
    *,
    progress: bool = False,
    threads: int | None = None,
    perturbation: Any = None,
) -> TaskReport:
    """Executes a task in the asynchronous control loop, step by step, on one plant.

    Args:
        task: the validated task.
        progress: log each step's outcome at INFO level.
        threads: numba threads of the planner thread (None: one fewer than the cores).
        perturbation: an :class:`envs.perturb.Perturbation` applied to the plant's body at
            every reset (None: the nominal body).

    Returns:
        Per-step and overall results.

    Raises:
        ConfigError: a goal outside the environment's goal space (naming file and step).
        IncompatibleError: a skill that does not fit the environment or the high level.
    """
    import envs

    period = 1.0 / task.control_rate_hz
    budget = sum(round(s.timeout_s / period) + 1 for s in task.steps) * task.max_transitions
    env = _make_task_env(task, budget + 10)
    if perturbation is not None:
        from envs.perturb import PerturbationError, PerturbedBody

        try:
            env = PerturbedBody(env, perturbation)
        except PerturbationError as error:
            raise ConfigError(f"{task.path}: {error}") from None
    xy = envs.xy_indices(env)
    if xy is None:
        raise IncompatibleError(f"{task.path}: {task.env} has no x-y position for goals")
    resources_ = _Resources(task)
    _check_steps(task, env, envs.goal_space(env), resources_, xy, period)

    obs, _ = env.reset(seed=task.seed)
    reports: list[StepReport] = []
    current: str | None = task.start
    success, reason = False, "max_transitions"
    started = time.perf_counter()
    for _ in range(task.max_transitions):
        step = task.step(current)
        report, obs = _run_step(task, step, env, obs, xy, period, resources_, threads)
        reports.append(report)
        if progress:
            logger.info("step %s: %s in %.2f s", step.id, report.outcome, report.time_s)
        index = [s.id for s in task.steps].index(step.id)
        if report.outcome == "terminated":
            success, reason = False, f"the plant terminated during step {step.id!r}"
            break
        edge = step.next if report.reached else step.on_fail
        if edge == ABORT:
            success, reason = False, f"step {step.id!r} failed ({report.outcome})"
            break
        if edge == END:
            success, reason = report.reached, "end"
            break
        current = task.steps[index + 1].id if edge == NEXT else edge
    env.close()
    return TaskReport(task, reports, success, reason, time.perf_counter() - started)


def _check_steps(task, env, space, resources_, xy, period) -> None:
    """Every step's goals are reachable and its skill and high level fit the plant (before
    anything runs).

    Raises:
        ConfigError: a goal outside the goal space (naming the file and the step).
        IncompatibleError: a skill or high level that does not fit.
    """
    for index, step in enumerate(task.steps):
        where = f"{task.path}: steps[{index}] (id {step.id!r})"
        if space is not None:
            for g, goal in enumerate(step.goals):
                reason = space.why_not(goal)
                if reason:
                    raise ConfigError(
                        f"{where}: goal {g + 1} ({goal[0]:g}, {goal[1]:g}) is not reachable in "
                        f"{task.env}: {reason}"
                    )
        try:
            check_compatible(resources_.skill(step), env, task.env)
            resources_.high_level(step, xy, period)
        except IncompatibleError as error:
            raise IncompatibleError(f"{where}: {error}") from None


def _run_step(task, step, env, obs, xy, period, resources_, threads=None):
    from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig
    from hrl_runtime.safety import SafetyConfig

    skill = resources_.skill(step)
    high_level = resources_.high_level(step, xy, period)
    config = AsyncLoopConfig(
        control_period_s=period,
        safety=SafetyConfig(fallback=step.fallback),
        planner_threads=threads,
    )
    duration_ticks = round(step.duration_s / period)
    max_ticks = max(1, round(step.timeout_s / period))

    def should_stop(tick: int, _obs: np.ndarray) -> bool:
        return step.stop == "duration" and tick + 1 >= duration_ticks

    started = time.perf_counter()
    with AsyncControlLoop(
        skill,
        high_level,
        config,
        action_space=env.action_space,
        observation_shape=env.observation_space.shape,
    ) as loop:
        result = loop.run(
            env,
            max_steps=max_ticks,
            obs=obs,
            should_stop=should_stop,
            stop_when_done=step.stop == "reached",
        )
    elapsed = time.perf_counter() - started
    goals = high_level.summary()["goals"]
    if result.stop_reason == "safe_stop":
        outcome, reached = "safe_stop", False
    elif result.stop_reason == "terminated":
        outcome, reached = "terminated", False
    elif step.stop == "duration":
        reached = result.stop_reason == "stopped"
        outcome = "duration" if reached else "timeout"
    else:
        reached = all(g["reached"] for g in goals)
        outcome = "reached" if reached else "timeout"
    summary = result.summary()
    report = StepReport(
        id=step.id,
        skill=step.skill,
        high_level=step.high_level,
        reached=reached,
        outcome=outcome,
        time_s=elapsed,
        steps=result.steps,
        goals=goals,
        faults=summary["faults"],
        deadline_misses=result.deadline_misses,
        control_latency_ms=summary["control_latency_ms"],
        planner_rate_hz=result.planner_rate_hz,
        safe_stop=summary["safe_stop"],
        trajectory=result.observations[:, list(xy)].copy(),
    )
    return report, result.observations[-1].astype(np.float32)


def plot_task(report: TaskReport, path: str | Path) -> Path:
    """Writes a PNG of the run: walls, each step's trajectory and goals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    import envs

    fig, ax = plt.subplots(figsize=(6.4, 6.4), dpi=110)
    env = envs.make_env(report.task.env)
    layout = getattr(env.unwrapped, "layout", None)
    env.close()
    if layout is not None:
        for xmin, ymin, xmax, ymax in layout.wall_boxes():
            ax.add_patch(Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, color="0.35", lw=0))
    colors = plt.get_cmap("tab10")
    for index, step in enumerate(report.steps):
        color = colors(index % 10)
        trajectory = step.trajectory
        ax.plot(
            trajectory[:, 0],
            trajectory[:, 1],
            color=color,
            lw=1.5,
            label=f"{step.id} ({step.outcome})",
        )
        radius = report.task.step(step.id).radius
        for goal in step.goals:
            edge = "tab:green" if goal["reached"] else "tab:red"
            ax.add_patch(Circle(goal["goal"], radius, fill=False, color=edge, lw=1.2))
    if report.steps and len(report.steps[0].trajectory):
        ax.plot(*report.steps[0].trajectory[0], "ks", ms=7, label="start")
    ax.set_aspect("equal")
    ax.set_title(
        f"{report.task.name} on {report.task.env}: {'success' if report.success else 'failed'} "
        f"in {report.time_s:.1f} s",
        fontsize=9,
    )
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)

"""Long-horizon task files: a sequence (or small graph) of skill steps, run in the async loop.

A task file is TOML (read with the standard library's ``tomllib``)::

    [task]
    name = "arena-tour"            # default: the file name
    env = "hrl/PointArena-v0"      # required: an id from `hrl envs`
    seed = 0                       # plant reset and planner seed
    control_rate_hz = 100          # control loop rate
    start = "north-east"           # first step id (default: the first step)
    max_transitions = 20           # guard against cycles in the step graph

    [defaults]                     # optional: fields every step inherits
    skill = "dads-pointmass"
    high_level = "mppi"

    [[steps]]
    id = "north-east"              # default: step1, step2, ...
    skill = "dads-pointmass"       # NAME[@VERSION] or a package directory
    high_level = "mppi"            # sequence | mppi | spirl | chaining
    goals = [[3.0, 3.0]]           # or goal = [3.0, 3.0]; x-y, metres
    stop = "reached"               # reached (every goal within radius) | duration
    duration_s = 2.0               # with stop = "duration": run this long, then succeed
    radius = 0.5                   # success radius, metres
    timeout_s = 8.0                # the step fails after this long
    fallback = "hold"              # hold | zero: action on a faulty tick
    next = "north-west"            # step id or "end" (default: the following step)
    on_fail = "abort"              # abort | next | a step id
    mppi = { num_samples = 512 }   # MPPIConfig fields for high_level = "mppi"

Validation names the file, the step and the field, with what was expected and what was found.
The plant persists across steps: a step starts where the previous one ended.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from hrl_runtime.errors import ConfigError, IncompatibleError

logger = logging.getLogger(__name__)

HIGH_LEVELS = ("sequence", "mppi", "spirl", "chaining")
# High levels a task may declare whose planners ship in later modules.
_PLANNER_MODULES = {"spirl": "planners.spirl", "chaining": "planners.chaining"}
STOPS = ("reached", "duration")
_TASK_KEYS = {"name", "env", "seed", "control_rate_hz", "start", "max_transitions", "description"}
_STEP_KEYS = {
    "id",
    "skill",
    "high_level",
    "goal",
    "goals",
    "stop",
    "duration_s",
    "radius",
    "timeout_s",
    "fallback",
    "next",
    "on_fail",
    "mppi",
    "description",
}
END, ABORT, NEXT = "end", "abort", "next"


@dataclass(frozen=True)
class TaskStep:
    """One step of a task: a skill under a high level until a stop condition or a timeout."""

    id: str
    skill: str
    high_level: str
    goals: np.ndarray
    """``(N, 2)`` x-y goals, metres."""
    stop: str = "reached"
    duration_s: float = 0.0
    radius: float = 0.5
    timeout_s: float = 30.0
    fallback: str = "hold"
    next: str = END
    on_fail: str = ABORT
    mppi: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """A validated task file."""

    path: Path
    name: str
    env: str
    steps: tuple[TaskStep, ...]
    start: str
    seed: int = 0
    control_rate_hz: float = 100.0
    max_transitions: int = 20
    description: str = ""

    def step(self, step_id: str) -> TaskStep:
        return next(s for s in self.steps if s.id == step_id)


def shipped_tasks() -> dict[str, Path]:
    """The example task files that ship with hrl-runtime, by name (file stem)."""
    folder = resources.files("hrl_runtime").joinpath("tasks")
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def find_task(ref: str | Path) -> Path:
    """A task file path from a path or the name of a shipped example.

    Raises:
        ConfigError: neither a file nor a shipped example.
    """
    path = Path(ref)
    if path.is_file():
        return path
    shipped = shipped_tasks()
    if str(ref) in shipped:
        return shipped[str(ref)]
    raise ConfigError(
        f"task file {str(ref)!r} not found; pass a .toml path or one of the shipped examples: "
        f"{', '.join(sorted(shipped))}"
    )


# --- validation ------------------------------------------------------------------------------
class _Where:
    """Formats error locations: ``file: steps[2] (id 'x'): field 'radius': ...``."""

    def __init__(self, path: Path):
        self.path = path

    def error(self, where: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {problem}")


def _number(where: _Where, loc: str, name: str, value: Any, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise where.error(loc, f"field {name!r} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise where.error(loc, f"field {name!r} must be > 0, got {value!r}")
    return float(value)


def _choice(where: _Where, loc: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise where.error(loc, f"field {name!r} must be one of {list(choices)}, got {value!r}")
    return value


def _goals(where: _Where, loc: str, raw: dict[str, Any]) -> np.ndarray:
    if ("goal" in raw) == ("goals" in raw):
        raise where.error(loc, "give exactly one of 'goal = [x, y]' or 'goals = [[x, y], ...]'")
    name = "goal" if "goal" in raw else "goals"
    value = [raw["goal"]] if name == "goal" else raw["goals"]
    ok = isinstance(value, list) and len(value) > 0
    ok = ok and all(
        isinstance(g, list)
        and len(g) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in g)
        for g in value
    )
    if not ok:
        expected = "[x, y]" if name == "goal" else "a non-empty list of [x, y]"
        raise where.error(loc, f"field {name!r} must be {expected} in metres, got {raw[name]!r}")
    goals = np.asarray(value, np.float64)
    if not np.isfinite(goals).all():
        raise where.error(loc, f"field {name!r} must be finite, got {raw[name]!r}")
    return goals


def _mppi_options(where: _Where, loc: str, raw: Any) -> dict[str, Any]:
    from planners.mppi import MPPIConfig

    if not isinstance(raw, dict):
        raise where.error(loc, f"field 'mppi' must be a table of MPPIConfig fields, got {raw!r}")
    known = {f.name for f in dataclasses.fields(MPPIConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise where.error(
            loc, f"field 'mppi' has unknown keys {unknown}; MPPIConfig fields are {sorted(known)}"
        )
    try:
        dataclasses.replace(MPPIConfig(), **raw).validate()
    except (ConfigError, TypeError) as error:
        raise where.error(loc, f"field 'mppi': {error}") from None
    return dict(raw)


def _check_available(where: _Where, loc: str, high_level: str) -> None:
    from planners.factory import PLANNERS

    if high_level in PLANNERS:
        return
    module = _PLANNER_MODULES.get(high_level, f"planners.{high_level}")
    if importlib.util.find_spec(module) is None:
        why = f"its planner ({module}) is not installed in this version of hrl-runtime"
    else:
        why = f"{module} exists but planners.build_goal_follower builds only {list(PLANNERS)}"
    raise where.error(
        loc, f"high_level {high_level!r} is not available yet: {why}; use 'mppi' or 'sequence'"
    )


def _step(where: _Where, index: int, raw: Any, defaults: dict[str, Any], last: bool) -> TaskStep:
    loc = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise where.error(loc, f"each step must be a table ([[steps]]), got {raw!r}")
    raw = {**defaults, **raw}
    step_id = raw.get("id", f"step{index + 1}")
    if not isinstance(step_id, str) or not step_id or step_id in (END, ABORT, NEXT):
        raise where.error(
            loc, f"field 'id' must be a non-empty string (not end/abort/next), got {step_id!r}"
        )
    loc = f"steps[{index}] (id {step_id!r})"
    unknown = sorted(set(raw) - _STEP_KEYS)
    if unknown:
        raise where.error(loc, f"unknown fields {unknown}; a step takes {sorted(_STEP_KEYS)}")
    for required in ("skill", "high_level", "timeout_s"):
        if required not in raw:
            raise where.error(loc, f"field {required!r} is required")
    if not isinstance(raw["skill"], str) or not raw["skill"]:
        raise where.error(
            loc, f"field 'skill' must be a skill NAME[@VERSION], got {raw['skill']!r}"
        )
    high_level = _choice(where, loc, "high_level", raw["high_level"], HIGH_LEVELS)
    _check_available(where, loc, high_level)
    stop = _choice(where, loc, "stop", raw.get("stop", "reached"), STOPS)
    duration = 0.0
    if stop == "duration":
        if "duration_s" not in raw:
            raise where.error(loc, "field 'duration_s' is required with stop = 'duration'")
        duration = _number(where, loc, "duration_s", raw["duration_s"])
    timeout = _number(where, loc, "timeout_s", raw["timeout_s"])
    if stop == "duration" and duration > timeout:
        raise where.error(loc, f"duration_s {duration} exceeds timeout_s {timeout}")
    mppi = _mppi_options(where, loc, raw.get("mppi", {}))
    if mppi and high_level != "mppi":
        raise where.error(
            loc, f"field 'mppi' only applies to high_level 'mppi', not {high_level!r}"
        )
    for name in ("next", "on_fail"):
        if name in raw and (not isinstance(raw[name], str) or not raw[name]):
            raise where.error(
                loc, f"field {name!r} must be a step id or keyword, got {raw[name]!r}"
            )
    return TaskStep(
        id=step_id,
        skill=raw["skill"],
        high_level=high_level,
        goals=_goals(where, loc, raw),
        stop=stop,
        duration_s=duration,
        radius=_number(where, loc, "radius", raw.get("radius", 0.5)),
        timeout_s=timeout,
        fallback=_choice(where, loc, "fallback", raw.get("fallback", "hold"), ("hold", "zero")),
        next=raw.get("next", END if last else NEXT),
        on_fail=raw.get("on_fail", ABORT),
        mppi=mppi,
    )


def load_task(path: str | Path) -> Task:
    """Reads and validates a task file (a path or a shipped example's name).

    Raises:
        ConfigError: naming the file, the step and the field at fault.
    """
    path = find_task(path)
    where = _Where(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    unknown = sorted(set(raw) - {"task", "defaults", "steps"})
    if unknown:
        raise where.error(
            "top level", f"unknown tables {unknown}; use [task], [defaults], [[steps]]"
        )
    head = raw.get("task")
    if not isinstance(head, dict):
        raise where.error("[task]", "the [task] table is required (with at least env = ...)")
    unknown = sorted(set(head) - _TASK_KEYS)
    if unknown:
        raise where.error("[task]", f"unknown fields {unknown}; [task] takes {sorted(_TASK_KEYS)}")
    if not isinstance(head.get("env"), str):
        raise where.error(
            "[task]", f"field 'env' must be an environment id, got {head.get('env')!r}"
        )
    seed = head.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise where.error("[task]", f"field 'seed' must be an integer, got {seed!r}")
    rate = _number(where, "[task]", "control_rate_hz", head.get("control_rate_hz", 100.0))
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict) or "id" in defaults:
        raise where.error("[defaults]", "must be a table of step fields (without 'id')")
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise where.error("[[steps]]", "a task needs at least one [[steps]] table")
    steps = [
        _step(where, i, s, defaults, last=i == len(raw_steps) - 1) for i, s in enumerate(raw_steps)
    ]
    ids = [s.id for s in steps]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise where.error("[[steps]]", f"duplicate step ids {duplicates}")
    for index, step in enumerate(steps):
        loc = f"steps[{index}] (id {step.id!r})"
        if step.next not in (*ids, END, NEXT):
            raise where.error(loc, f"field 'next' must be a step id or 'end', got {step.next!r}")
        if step.on_fail not in (*ids, ABORT, NEXT):
            raise where.error(
                loc, f"field 'on_fail' must be a step id, 'next' or 'abort', got {step.on_fail!r}"
            )
        if NEXT in (step.next, step.on_fail) and index == len(steps) - 1:
            raise where.error(loc, "'next' on the last step has no following step; use 'end'")
    start = head.get("start", ids[0])
    if start not in ids:
        raise where.error(
            "[task]", f"field 'start' must be one of the step ids {ids}, got {start!r}"
        )
    max_transitions = head.get("max_transitions", 4 * len(steps))
    if (
        isinstance(max_transitions, bool)
        or not isinstance(max_transitions, int)
        or max_transitions < 1
    ):
        raise where.error(
            "[task]", f"field 'max_transitions' must be an integer >= 1, got {max_transitions!r}"
        )
    return Task(
        path=path,
        name=str(head.get("name", path.stem)),
        env=head["env"],
        steps=tuple(steps),
        start=start,
        seed=seed,
        control_rate_hz=rate,
        max_transitions=max_transitions,
        description=str(head.get("description", "")),
    )


# --- running ---------------------------------------------------------------------------------
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
        from hrl_runtime.cli import _load_skill

        if step.skill not in self.skills:
            self.skills[step.skill] = _load_skill(step.skill)
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


def run_task(task: Task, *, progress: bool = False) -> TaskReport:
    """Executes a task in the asynchronous control loop, step by step, on one plant.

    Args:
        task: the validated task.
        progress: log each step's outcome at INFO level.

    Returns:
        Per-step and overall results.

    Raises:
        ConfigError: a goal outside the environment's goal space (naming file and step).
        IncompatibleError: a skill that does not fit the environment or the high level.
    """
    import envs
    from hrl_runtime.follow import check_compatible

    period = 1.0 / task.control_rate_hz
    budget = sum(round(s.timeout_s / period) + 1 for s in task.steps) * task.max_transitions
    env = _make_task_env(task, budget + 10)
    xy = envs.xy_indices(env)
    if xy is None:
        raise IncompatibleError(f"{task.path}: {task.env} has no x-y position for goals")
    space = envs.goal_space(env)
    resources_ = _Resources(task)
    for index, step in enumerate(task.steps):  # fail before running anything
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

    obs, _ = env.reset(seed=task.seed)
    reports: list[StepReport] = []
    current: str | None = task.start
    success, reason = False, "max_transitions"
    started = time.perf_counter()
    for _ in range(task.max_transitions):
        step = task.step(current)
        report, obs = _run_step(task, step, env, obs, xy, period, resources_)
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


def _run_step(task, step, env, obs, xy, period, resources_):
    from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig
    from hrl_runtime.safety import SafetyConfig

    skill = resources_.skill(step)
    high_level = resources_.high_level(step, xy, period)
    config = AsyncLoopConfig(control_period_s=period, safety=SafetyConfig(fallback=step.fallback))
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

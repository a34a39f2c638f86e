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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from hrl_runtime.errors import ConfigError

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
    folder = resources.files("hrl_runtime.taskfiles").joinpath("examples")
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

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
    skill = "dads-pointmass"       # NAME[@VERSION], or a package directory: a path (with a
                                   # "/", or starting with "." or "~") relative to this file
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
Values are held to the bounds of :mod:`hrl_runtime.checks`: seeds 0..2**32-1, a control rate up
to ``MAX_RATE_HZ``, timeouts and durations up to ``MAX_SECONDS`` and ``MAX_STEPS`` control ticks,
finite goals within ``±MAX_MAGNITUDE``, ``max_transitions`` up to ``MAX_TRANSITIONS`` and the
whole run (``max_transitions`` times the longest step) up to ``MAX_STEPS`` ticks; a file larger
than ``MAX_FILE_BYTES``, not UTF-8, or nested deeper than ``MAX_NESTING`` is refused.
The plant persists across steps: a step starts where the previous one ended.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from hrl_runtime import checks
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
MAX_TASK_STEPS = 1_000
"""Most [[steps]] tables in one task file."""


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

    def check(self, where: str, check: Any, value: Any, name: str, *args: Any, **kw: Any) -> Any:
        """``check(value, f"field {name!r}", ...)`` from :mod:`hrl_runtime.checks`, its error
        located in this file."""
        try:
            return check(value, f"field {name!r}", *args, **kw)
        except ConfigError as error:
            raise self.error(where, str(error)) from None


def _number(
    where: _Where, loc: str, name: str, value: Any, high: float = checks.MAX_SECONDS
) -> float:
    """A finite number in ``(0, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise where.error(
            loc, f"field {name!r} must be a finite number, got {checks.shorten(value)}"
        )
    if value <= 0:
        raise where.error(loc, f"field {name!r} must be > 0, got {value!r}")
    return where.check(loc, checks.positive, value, name, high)


def _choice(where: _Where, loc: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise where.error(
            loc, f"field {name!r} must be one of {list(choices)}, got {checks.shorten(value)}"
        )
    return value


def _goals(where: _Where, loc: str, raw: dict[str, Any]) -> np.ndarray:
    if ("goal" in raw) == ("goals" in raw):
        raise where.error(loc, "give exactly one of 'goal = [x, y]' or 'goals = [[x, y], ...]'")
    name = "goal" if "goal" in raw else "goals"
    value = [raw["goal"]] if name == "goal" else raw["goals"]
    if isinstance(value, list) and len(value) > checks.MAX_GOALS:
        raise where.error(loc, f"field {name!r} has {len(value)} goals; at most {checks.MAX_GOALS}")
    ok = isinstance(value, list) and len(value) > 0
    ok = ok and all(
        isinstance(g, list)
        and len(g) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in g)
        for g in value
    )
    if not ok:
        expected = "[x, y]" if name == "goal" else "a non-empty list of [x, y]"
        raise where.error(
            loc, f"field {name!r} must be {expected} in metres, got {checks.shorten(raw[name])}"
        )
    return np.asarray(
        [where.check(loc, checks.coordinates, g, f"{name}[{i}]", 2) for i, g in enumerate(value)],
        np.float64,
    )


def _mppi_options(where: _Where, loc: str, raw: Any) -> dict[str, Any]:
    from planners.mppi import MPPIConfig

    if not isinstance(raw, dict):
        raise where.error(loc, f"field 'mppi' must be a table of MPPIConfig fields, got {raw!r}")
    defaults = {f.name: f.default for f in dataclasses.fields(MPPIConfig)}
    unknown = sorted(str(key) for key in set(raw) - set(defaults))
    if unknown:
        raise where.error(
            loc,
            f"field 'mppi' has unknown keys {checks.shorten(unknown)}; MPPIConfig fields are "
            f"{sorted(defaults)}",
        )
    for key, value in raw.items():
        _mppi_value(where, loc, key, value, defaults[key])
    try:
        dataclasses.replace(MPPIConfig(), **raw).validate()
    except (ConfigError, TypeError) as error:
        raise where.error(loc, f"field 'mppi': {error}") from None
    return dict(raw)


MPPI_LIMITS = {"num_samples": 100_000, "horizon": 1_000, "iterations": 100, "threads": 256}
"""Largest integer a task file may give an MPPIConfig field (the samples, horizon and
iterations multiply into the planner's work per step)."""


def _mppi_value(where: _Where, loc: str, key: str, value: Any, default: Any) -> None:
    """Refuses an ``mppi`` entry whose type differs from the MPPIConfig field's, or that is out
    of bounds (before ``MPPIConfig.validate`` compares it)."""
    name = f"mppi.{key}"
    if key == "seed":
        where.check(loc, checks.seed, value, name)
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise where.error(
                loc, f"field {name!r} must be true or false, got {checks.shorten(value)}"
            )
    elif isinstance(default, int) or key in MPPI_LIMITS:
        where.check(loc, checks.integer, value, name, low=0, high=MPPI_LIMITS.get(key, 10**6))
    elif isinstance(default, float):
        bound = checks.MAX_MAGNITUDE
        where.check(loc, checks.real, value, name, low=-bound, high=bound)
    elif isinstance(default, str) and not isinstance(value, str):
        raise where.error(loc, f"field {name!r} must be a string, got {checks.shorten(value)}")


def _check_available(where: _Where, loc: str, high_level: str) -> None:
    from planners.factory import PLANNERS

    if high_level in PLANNERS:
        return
    module = _PLANNER_MODULES.get(high_level, f"planners.{high_level}")
    if importlib.util.find_spec(module) is None:
        why = f"its planner ({module}) is not installed in this version of hrl-runtime"
    else:
        why = f"{module} exists but planners.build_goal_follower builds only {list(PLANNERS)}"
    if high_level == "spirl":
        why += (
            " (a SPiRL policy is trained for one task, not to follow goals: run it with "
            "`hrl eval --policy NAME --env ENV`)"
        )
    raise where.error(
        loc,
        f"high_level {high_level!r} is not available yet: {why}; use one of {list(PLANNERS)}",
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
            loc,
            f"field 'skill' must be a skill NAME[@VERSION], got {checks.shorten(raw['skill'])}",
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
        skill=_skill_ref(where, raw["skill"]),
        high_level=high_level,
        goals=_goals(where, loc, raw),
        stop=stop,
        duration_s=duration,
        radius=_number(where, loc, "radius", raw.get("radius", 0.5), checks.MAX_MAGNITUDE),
        timeout_s=timeout,
        fallback=_choice(where, loc, "fallback", raw.get("fallback", "hold"), ("hold", "zero")),
        next=raw.get("next", END if last else NEXT),
        on_fail=raw.get("on_fail", ABORT),
        mppi=mppi,
    )


def _skill_ref(where: _Where, ref: str) -> str:
    """A skill name as given; a path (with a ``/``, or starting with ``.`` or ``~``) resolved
    against the task file's directory, not the current one."""
    if "/" in ref or os.sep in ref or ref.startswith((".", "~")):
        path = Path(ref).expanduser()
        return str(path if path.is_absolute() else where.path.absolute().parent / path)
    return ref


def _read(path: Path) -> dict[str, Any]:
    """The file's TOML: at most ``MAX_FILE_BYTES``, UTF-8, nested at most ``MAX_NESTING`` deep."""
    try:
        size = path.stat().st_size
        if size > checks.MAX_FILE_BYTES:
            raise ConfigError(
                f"{path}: is {size:,} bytes; a task file may have at most "
                f"{checks.MAX_FILE_BYTES:,} (split the task)"
            )
        with path.open("rb") as file:
            data = file.read(checks.MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: is not UTF-8 text (byte {error.start}); save it as UTF-8"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: nests tables or lists too deeply; at most {checks.MAX_NESTING} levels"
        ) from None
    if checks.nesting_depth(raw) > checks.MAX_NESTING:
        raise ConfigError(
            f"{path}: nests tables or lists more than {checks.MAX_NESTING} levels deep; flatten it"
        )
    return raw


def _check_run_length(where: _Where, steps: list[TaskStep], rate: float, transitions: int) -> None:
    """Refuses a step longer than ``MAX_STEPS`` ticks, and a run whose worst case (every
    transition through the longest step) is."""
    for index, step in enumerate(steps):
        ticks = step.timeout_s * rate
        if ticks > checks.MAX_STEPS:
            raise where.error(
                f"steps[{index}] (id {step.id!r})",
                f"timeout_s {step.timeout_s:g} at control_rate_hz {rate:g} is {ticks:,.0f} "
                f"control ticks, more than {checks.MAX_STEPS:,}; shorten the timeout",
            )
    longest = max(step.timeout_s for step in steps) * rate
    if transitions * longest > checks.MAX_STEPS:
        raise where.error(
            "[task]",
            f"max_transitions {transitions} times the longest step ({longest:,.0f} ticks) allows "
            f"{transitions * longest:,.0f} control ticks, more than {checks.MAX_STEPS:,}; lower "
            "max_transitions or the timeouts",
        )


def _task_head(where: _Where, raw: dict[str, Any]) -> tuple[dict[str, Any], int, float]:
    """The ``[task]`` table with its seed and control rate, checked."""
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
            "[task]",
            f"field 'env' must be an environment id, got {checks.shorten(head.get('env'))}",
        )
    seed = head.get("seed", 0)
    if isinstance(seed, float):  # a TOML integer is a seed; 1.0 is not
        raise where.error("[task]", f"field 'seed' must be an integer, got {seed!r}")
    seed = where.check("[task]", checks.seed, seed, "seed")
    rate = _number(
        where, "[task]", "control_rate_hz", head.get("control_rate_hz", 100.0), checks.MAX_RATE_HZ
    )
    return head, seed, rate


def load_task(path: str | Path) -> Task:
    """Reads and validates a task file (a path or a shipped example's name).

    Raises:
        ConfigError: naming the file, the step and the field at fault.
    """
    path = find_task(path)
    where = _Where(path)
    raw = _read(path)
    head, seed, rate = _task_head(where, raw)
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict) or "id" in defaults:
        raise where.error("[defaults]", "must be a table of step fields (without 'id')")
    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise where.error("[[steps]]", "a task needs at least one [[steps]] table")
    if len(raw_steps) > MAX_TASK_STEPS:
        raise where.error(
            "[[steps]]", f"has {len(raw_steps)} steps; a task may have at most {MAX_TASK_STEPS}"
        )
    steps = [
        _step(where, i, s, defaults, last=i == len(raw_steps) - 1) for i, s in enumerate(raw_steps)
    ]
    ids = [s.id for s in steps]
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
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
            "[task]",
            f"field 'start' must be one of the step ids {checks.shorten(ids)}, got "
            f"{checks.shorten(start)}",
        )
    max_transitions = head.get("max_transitions", 4 * len(steps))
    if isinstance(max_transitions, float):
        raise where.error(
            "[task]", f"field 'max_transitions' must be an integer, got {max_transitions!r}"
        )
    max_transitions = where.check(
        "[task]", checks.count, max_transitions, "max_transitions", checks.MAX_TRANSITIONS
    )
    _check_run_length(where, steps, rate, max_transitions)
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

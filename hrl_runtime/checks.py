"""One argument-validation layer for the CLI, task files and the server's requests.

Every check takes the value as it arrived (a string from the command line, a TOML value, a JSON
field) and either returns it converted or raises :class:`~hrl_runtime.errors.ConfigError` with one
line that names the value, what is wrong and how to fix it. The bounds live here, once:

- seeds are integers in ``[0, 2**32 - 1]`` (numpy's and Gymnasium's seed range);
- counts and step budgets are integers in ``[1, MAX_*]``, so that no input asks for terabytes or
  runs for days by accident (the bounds are generous for real runs; a longer one is split);
- real numbers are finite unless a check says otherwise, and within the magnitude a float32
  state or goal can hold;
- output paths are checked before any work starts: the parent directory exists and is writable,
  the path is not a directory (for files) or a file (for directories), its suffix fits, and
  nothing that exists is replaced unless the caller passes ``force`` (or ``resume``).

:func:`argparse_type` adapts any check to an ``argparse`` ``type=`` so that the parser reports it
as ``hrl CMD: error: argument --flag: ...`` with exit status 2. Values are quoted shortened
(:func:`shorten`), so a 50 MB argument never becomes a 50 MB error line.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hrl_runtime.errors import ConfigError

T = TypeVar("T")

SEED_MAX = 2**32 - 1
"""Largest seed (numpy's ``default_rng`` and Gymnasium's ``reset(seed=...)`` accept 0..2**32-1)."""
MAX_STEPS = 10_000_000
"""Control steps of one run (about 28 hours at 100 Hz)."""
MAX_GOALS = 10_000
"""Goals in one run (``--random-goals``, ``--goals``, a task file's list)."""
MAX_TRAIN_STEPS = 100_000_000
"""Environment steps or updates of one training run."""
MAX_MAGNITUDE = 1e6
"""Largest absolute coordinate of a goal or a state the runtime accepts (float32 holds it with
room for squared distances)."""
MAX_TEXT = 200
"""Characters of a value echoed in an error message."""
MAX_EPISODES = 100_000
"""Episodes of one evaluation or collection."""
MAX_THREADS = 256
"""Threads a command may ask for (``--threads``, ``--jobs``)."""
MAX_RATE_HZ = 10_000.0
"""Fastest control rate (a 0.1 ms period)."""
MAX_SECONDS = 86_400.0
"""Longest timeout or duration of one step (a day)."""
MAX_TRANSITIONS = 10_000
"""Steps a task file's graph may take in one run (``max_transitions``)."""
MAX_FILE_BYTES = 1_000_000
"""Largest task file read (a task file is a few kilobytes)."""
MAX_NESTING = 32
"""Deepest nesting of tables and lists in a task file or a JSON request."""


def shorten(value: Any, limit: int = MAX_TEXT) -> str:
    """``repr(value)`` cut to ``limit`` characters (with the length it had) for error messages."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[: limit - 30]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 30]}... ({len(text)} characters)"


def _fail(name: str, value: Any, problem: str, fix: str = "") -> ConfigError:
    message = f"{name} {shorten(value)} {problem}"
    return ConfigError(message + (f"; {fix}" if fix else ""))


def integer(
    value: Any, name: str, *, low: int | None = None, high: int | None = None, fix: str = ""
) -> int:
    """An integer (from an int or a decimal string) in ``[low, high]``.

    Raises:
        ConfigError: not an integer (bools and floats with a fraction included) or out of range.
    """
    if isinstance(value, bool):
        raise _fail(name, value, "is not an integer", fix)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            number = int(value.strip())
        except ValueError:
            raise _fail(name, value, "is not an integer", fix) from None
    else:
        raise _fail(name, value, "is not an integer", fix)
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise _fail(name, value, f"is out of range: expected an integer in {bounds}", fix)
    return number


def seed(value: Any, name: str = "seed") -> int:
    """A seed in ``[0, SEED_MAX]``."""
    return integer(value, name, low=0, high=SEED_MAX, fix=f"seeds are integers 0..{SEED_MAX}")


def count(value: Any, name: str, high: int, low: int = 1) -> int:
    """A count in ``[low, high]`` (steps, goals, samples, updates)."""
    return integer(value, name, low=low, high=high, fix=f"use {low}..{high}")


def real(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    finite: bool = True,
    fix: str = "",
) -> float:
    """A real number (int, float or decimal string) within bounds.

    Args:
        low, high: inclusive bounds (``low`` exclusive with ``low_open``).
        finite: refuse NaN and infinities (NaN is refused always).

    Raises:
        ConfigError: not a number, NaN, infinite (with ``finite``) or out of bounds.
    """
    if isinstance(value, bool):
        raise _fail(name, value, "is not a number", fix)
    if isinstance(value, int):
        if abs(value) > 1e300:
            raise _fail(name, value, "is too large", fix)
        number = float(value)
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str) and len(value) <= 60:
        try:
            number = float(value.strip())
        except ValueError:
            raise _fail(name, value, "is not a number", fix) from None
    else:
        raise _fail(name, value, "is not a number", fix)
    if math.isnan(number):
        raise _fail(name, value, "is not a number (NaN)", fix)
    if finite and math.isinf(number):
        raise _fail(name, value, "must be finite", fix)
    if low is not None and (number <= low if low_open else number < low):
        relation = ">" if low_open else ">="
        raise _fail(name, value, f"must be {relation} {low:g}", fix)
    if high is not None and number > high:
        raise _fail(name, value, f"must be <= {high:g}", fix)
    return number


def positive(value: Any, name: str, high: float | None = None, fix: str = "") -> float:
    """A finite number ``> 0`` (and ``<= high``)."""
    return real(value, name, low=0.0, low_open=True, high=high, fix=fix)


def coordinates(value: Any, name: str, size: int | None = None) -> list[float]:
    """A list of finite numbers within ``MAX_MAGNITUDE`` (a goal, a point), of length ``size``.

    Accepts a list/tuple of numbers or a comma-separated string.
    """
    if isinstance(value, str):
        if len(value) > 10_000:
            raise _fail(name, value, "is too long")
        items: Any = [part for part in value.split(",")]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise _fail(name, value, "must be a list of numbers")
    if size is not None and len(items) != size:
        raise _fail(name, value, f"must have {size} numbers, got {len(items)}")
    bound = MAX_MAGNITUDE
    return [
        real(item, f"{name}[{index}]", low=-bound, high=bound, fix=f"coordinates lie in ±{bound:g}")
        for index, item in enumerate(items)
    ]


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """How deeply ``value``'s lists, tuples and dicts nest (a scalar is 0), counted without
    recursion and only up to ``limit + 1``."""
    depth, level = 0, [value]
    while depth <= limit:
        containers = [item for item in level if isinstance(item, dict | list | tuple)]
        if not containers:
            break
        depth += 1
        level = [
            child
            for item in containers
            for child in (item.values() if isinstance(item, dict) else item)
        ]
    return depth


def shallow(value: Any, name: str, limit: int = MAX_NESTING) -> Any:
    """``value`` if its lists and tables nest at most ``limit`` deep.

    Raises:
        ConfigError: nested deeper.
    """
    if nesting_depth(value, limit) > limit:
        raise ConfigError(f"{name} nests lists or tables more than {limit} deep; flatten it")
    return value


def _writable_parent(path: Path, name: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise _fail(
            name,
            str(path),
            f"cannot be written: directory {shorten(str(parent))} does not exist",
            "create it first or choose another path",
        )
    if not parent.is_dir():
        raise _fail(
            name, str(path), f"cannot be written: {shorten(str(parent))} is not a directory"
        )
    if not _can_create_in(parent):
        raise _fail(
            name,
            str(path),
            f"cannot be written: directory {shorten(str(parent))} is not writable",
            "choose a directory you can write to",
        )


def _can_create_in(directory: Path) -> bool:
    """Whether a file can be created in ``directory`` (tried, not guessed from permission bits:
    root passes every ``os.access`` check, yet cannot create files in ``/proc``)."""
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".hrl-write-check-"):
            return True
    except OSError:
        return False


def output_file(
    value: Any, name: str, *, suffixes: tuple[str, ...] = (), force: bool = False
) -> Path:
    """A file the command will write, checked before any work starts.

    Args:
        suffixes: allowed suffixes (for example ``(".png",)``); empty: any.
        force: an existing regular file may be replaced.

    Raises:
        ConfigError: empty, a directory, an existing file (without ``force``), a wrong suffix or
            a parent directory that does not exist or is not writable.
    """
    if not isinstance(value, str | Path) or not str(value).strip() or "\x00" in str(value):
        raise _fail(name, value, "is not a file path", "give a file name")
    path = Path(value)
    if suffixes and path.suffix.lower() not in suffixes:
        raise _fail(
            name,
            str(path),
            f"must end in {' or '.join(suffixes)}",
            f"for example {shorten((path.stem or 'output') + suffixes[0])}",
        )
    try:
        if path.is_dir():
            raise _fail(name, str(path), "is a directory", "give a file name inside it")
        if path.exists() or path.is_symlink():
            if not path.is_file():
                raise _fail(name, str(path), "exists and is not a regular file")
            if not force:
                raise _fail(name, str(path), "already exists", "pass --force to replace it")
        _writable_parent(path, name)
    except OSError as error:  # a name too long, a loop of links, no permission to look
        raise _unusable(name, path, error) from None
    return path


def _unusable(name: str, path: Path, error: OSError) -> ConfigError:
    return _fail(name, str(path), f"cannot be used ({error.strerror or error})", "choose another")


def output_dir(
    value: Any, name: str, *, force: bool = False, resume: bool = False, may_exist: bool = False
) -> Path:
    """A directory the command will create or fill, checked before any work starts.

    Args:
        force: an existing non-empty directory may be replaced (the command decides how).
        resume: an existing directory is the one to continue from.
        may_exist: the command writes its own files into an existing directory without removing
            anything else (for example ``hrl demo --out``); an existing directory is fine.

    Raises:
        ConfigError: empty, an existing file, an existing non-empty directory (unless ``force``,
            ``resume`` or ``may_exist``) or a parent that does not exist or is not writable.
    """
    if not isinstance(value, str | Path) or not str(value).strip() or "\x00" in str(value):
        raise _fail(name, value, "is not a directory path", "give a directory")
    path = Path(value)
    try:
        return _existing_or_new_dir(path, name, force or resume or may_exist)
    except OSError as error:
        raise _unusable(name, path, error) from None


def _existing_or_new_dir(path: Path, name: str, may_fill: bool) -> Path:
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise _fail(name, str(path), "exists and is not a directory", "choose a new directory")
        if not _can_create_in(path):
            raise _fail(name, str(path), "is not writable", "choose a directory you can write to")
        if any(path.iterdir()) and not may_fill:
            raise _fail(
                name,
                str(path),
                "already exists and is not empty",
                "pass --resume to continue it, --force to replace it, or choose a new directory",
            )
        return path
    _writable_parent(path, name)
    return path


def argparse_type(check: Callable[..., T], *args: Any, **kwargs: Any) -> Callable[[str], T]:
    """``check`` as an argparse ``type=``: argparse reports its message, exit status 2.

    Example::

        parser.add_argument("--seed", type=argparse_type(seed), default=0)
    """

    def convert(text: str) -> T:
        try:
            return check(text, "value", *args, **kwargs)
        except ConfigError as error:
            message = str(error)
            prefix = "value "
            raise argparse.ArgumentTypeError(message.removeprefix(prefix)) from None

    convert.__name__ = getattr(check, "__name__", "value")
    return convert

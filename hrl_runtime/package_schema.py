"""Typed checks of the JSON a package holds: the manifest's fields and each kind's ``config``.

A package is untrusted input. :class:`Fields` reads one JSON object of it and refuses, with a
:class:`~hrl_runtime.errors.PackageError` that names the file and the dotted field, anything that
is not what the reader asks for: a wrong type (a bool is not an integer), a number out of range or
not finite, a string or list too long, an unknown or missing key. Echoed values are shortened
(:func:`~hrl_runtime.checks.shorten`), so a 50 MB field never becomes a 50 MB error line.
:func:`nesting_depth` bounds how deep a document may nest before anything walks it recursively.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hrl_runtime.checks import shorten
from hrl_runtime.errors import PackageError

MANIFEST = "skill.json"
"""The manifest's file name inside a package directory."""
MAX_DEPTH = 24
"""Deepest nesting of objects and lists a manifest may hold (the shipped ones nest 6 deep)."""
MAX_LIST = 4096
"""Longest list a configuration entry may hold (widths, indices)."""
MAX_KEY = 256
"""Longest key (a space, file, tensor or config name) echoed whole in a field name."""

_MISSING = object()


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deep ``value`` nests lists and objects, counted without recursion up to ``limit + 1``.

    Args:
        value: A parsed JSON document.
        limit: Depth after which counting stops (the answer is then ``limit + 1``).

    Returns:
        1 for a scalar, 2 for a flat list or object, and so on (at most ``limit + 1``).
    """
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            stack.extend((child, depth + 1) for child in children)
    return deepest


def field_name(prefix: str, key: Any) -> str:
    """``prefix.key`` with ``key`` shortened when it is long (keys are untrusted too)."""
    text = key if isinstance(key, str) and len(key) <= MAX_KEY else shorten(key, 60)
    return f"{prefix}.{text}" if prefix else text


class Fields:
    """Reads typed values from one JSON object of a package file.

    Args:
        path: The file the object came from (named in every error).
        data: The object.
        prefix: Its dotted field in the file (``""`` for the root, ``"config"``, ...).
        fix: How to fix a refused value, appended to every error.

    Raises:
        PackageError: ``data`` is not an object.
    """

    def __init__(self, path: Path | str, data: Any, prefix: str = "", fix: str = ""):
        self.path, self.prefix, self.fix = Path(path), prefix, fix
        if not isinstance(data, dict):
            raise PackageError(
                self.path, f"must be an object, got {shorten(data)}", field=prefix or "<root>"
            )
        self.data: dict[str, Any] = data

    def error(self, key: Any, problem: str) -> PackageError:
        """A :class:`PackageError` about ``key`` of this object."""
        return PackageError(self.path, problem, field=field_name(self.prefix, key), fix=self.fix)

    def _get(self, key: str, default: Any) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise self.error(key, "is missing")
        return default

    def keys(self, required: Iterable[str], optional: Iterable[str] = ()) -> None:
        """Refuses a missing ``required`` key and any key not listed."""
        required, allowed = list(required), {*required, *optional}
        for key in required:
            self._get(key, _MISSING)
        for key in self.data:
            if key not in allowed:
                raise self.error(key, f"is not a known key (known: {', '.join(sorted(allowed))})")

    def value(self, key: str, default: Any = _MISSING) -> Any:
        """The raw value of ``key`` (``default`` when absent; refused when absent without one)."""
        return self._get(key, default)

    def section(self, key: str) -> Fields:
        """The object under ``key`` as :class:`Fields`."""
        value = self._get(key, _MISSING)
        if not isinstance(value, dict):
            raise self.error(key, f"must be an object, got {shorten(value)}")
        return Fields(self.path, value, field_name(self.prefix, key), self.fix)

    def integer(
        self, key: str, low: int, high: int, default: Any = _MISSING, *, value: Any = _MISSING
    ) -> int:
        """An integer in ``[low, high]`` (a bool or a float is refused)."""
        number = self._get(key, default) if value is _MISSING else value
        if isinstance(number, bool) or not isinstance(number, int):
            raise self.error(key, f"must be an integer, got {shorten(number)}")
        if not low <= number <= high:
            raise self.error(key, f"must be in [{low}, {high}], got {shorten(number)}")
        return number

    def number(
        self, key: str, low: float, high: float, default: Any = _MISSING, *, above: bool = False
    ) -> float:
        """A finite number in ``[low, high]`` (``(low, high]`` when ``above``)."""
        number = self._get(key, default)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise self.error(key, f"must be a number, got {shorten(number)}")
        number = float(number)
        inside = (number > low if above else number >= low) and number <= high
        if not math.isfinite(number) or not inside:
            bounds = f"({low}, {high}]" if above else f"[{low}, {high}]"
            raise self.error(key, f"must be a finite number in {bounds}, got {shorten(number)}")
        return number

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        """``true`` or ``false``."""
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {shorten(value)}")
        return value

    def text(
        self,
        key: str,
        max_length: int = MAX_KEY,
        default: Any = _MISSING,
        *,
        choices: Iterable[str] | None = None,
    ) -> str:
        """A string of at most ``max_length`` characters (one of ``choices`` when given)."""
        value = self._get(key, default)
        if not isinstance(value, str) or len(value) > max_length:
            raise self.error(
                key, f"must be a string of at most {max_length} characters, got {shorten(value)}"
            )
        options = None if choices is None else sorted(choices)
        if options is not None and value not in options:
            raise self.error(key, f"must be one of {options}, got {shorten(value)}")
        return value

    def integers(
        self,
        key: str,
        low: int,
        high: int,
        default: Any = _MISSING,
        *,
        length: int | None = None,
        min_length: int = 0,
        max_length: int = MAX_LIST,
    ) -> tuple[int, ...]:
        """A list of integers in ``[low, high]`` of ``length`` entries (or within the bounds)."""
        values = self._get(key, default)
        if values is default and default is not _MISSING:
            return tuple(default)
        low_length, high_length = (
            (length, length) if length is not None else (min_length, max_length)
        )
        if not isinstance(values, list) or not low_length <= len(values) <= high_length:
            size = str(length) if length is not None else f"{min_length} to {max_length}"
            raise self.error(key, f"must be a list of {size} integers, got {shorten(values)}")
        for index, item in enumerate(values):
            self.integer(f"{key}[{index}]", low, high, value=item)
        return tuple(values)

"""Request validation of the policy server: frames become a checked request, fields become checked
values, and anything else becomes one :class:`RequestError` with a code and a one-line message.

The limits live here, once:

- a JSON frame (and a binary ``obs`` payload) holds at most :data:`MAX_FRAME_BYTES`; a larger one
  is refused with ``too_large`` before it is decoded;
- a request nests at most :data:`MAX_DEPTH` levels (the deepest valid one, ``goals``, has three);
- numbers are finite (NaN or inf: ``non_finite``) and within
  :data:`~hrl_runtime.checks.MAX_MAGNITUDE` (anything larger, a 400-digit integer included:
  ``bad_field``);
- goals lie inside the skill's observation bounds at ``xy_indices`` (its arena) where those are
  finite.

Values echoed in messages are shortened (:func:`~hrl_runtime.checks.shorten`).
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from typing import Any

import numpy as np

from hrl_runtime import checks
from hrl_runtime.errors import ConfigError

MAX_FRAME_BYTES = 1 << 20
"""Bytes of one request frame (a JSON frame or a binary ``obs``): 10,000 goals fit in 400 kB."""
MAX_DEPTH = 8
"""Nesting levels of a request (the request object is level 1, ``goals`` reaches level 3)."""
MAX_TEXT_FIELD = 4096
"""Characters of a text field (``skill``, ``planner``, ``fallback``)."""
MAX_MPPI_INTEGERS = {"num_samples": 65_536, "horizon": 1_000, "iterations": 100, "threads": 256}
"""Upper bounds of the integer ``mppi`` fields (K x T rollouts must fit in memory)."""
CALLS = ("init", "reset", "set_state", "get_action", "status", "shutdown")
CONTROL_CALLS = ("get_action",)
"""Calls whose error replies carry the safe action."""


class RequestError(Exception):
    """A request the server refuses; becomes an error reply.

    Args:
        code: the error code (see :mod:`hrl_runtime.serving.server`).
        message: one line naming the field, what is wrong and the fix.
        action: the safe action ``(da,)`` to send with the reply, if already known.
        call: the call the refused request named, when it got that far (else None).
    """

    def __init__(
        self,
        code: str,
        message: str,
        action: np.ndarray | None = None,
        call: str | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.action = action
        self.call = call


def parse_frames(frames: list[bytes]) -> tuple[dict[str, Any], np.ndarray | None]:
    """The request object and the optional binary observation ``(do,)`` of one message.

    Raises:
        RequestError: ``too_large``, ``malformed``, ``unknown_call`` or ``bad_size``.
    """
    if not 1 <= len(frames) <= 2:
        raise RequestError(
            "malformed",
            f"expected 1 or 2 frames, got {len(frames)}; send the JSON request "
            "and optionally the obs as raw float64",
        )
    for index, frame in enumerate(frames):
        if len(frame) > MAX_FRAME_BYTES:
            raise RequestError(
                "too_large",
                f"frame {index} holds {len(frame)} bytes, more than {MAX_FRAME_BYTES}; "
                "send a smaller request",
            )
    request = _decode(frames[0])
    if not isinstance(request, dict):
        raise RequestError(
            "malformed", f"the request must be a JSON object with a 'call', got {_kind(request)}"
        )
    call = request.get("call")
    if not isinstance(call, str) or call not in CALLS:
        raise RequestError(
            "unknown_call", f"unknown call {checks.shorten(call, 60)}; calls are {list(CALLS)}"
        )
    if _too_deep(request):
        raise RequestError(
            "malformed", f"the request nests deeper than {MAX_DEPTH} levels; flatten it", call=call
        )
    payload = None
    if len(frames) == 2:
        if len(frames[1]) % 8:
            raise RequestError(
                "bad_size",
                f"binary payload of {len(frames[1])} bytes is not float64[]; send 8 bytes a value",
                call=call,
            )
        payload = np.frombuffer(frames[1], dtype="<f8")
    return request, payload


def _decode(frame: bytes) -> Any:
    try:
        return json.loads(bytes(frame).decode("utf-8"))
    except UnicodeDecodeError:
        problem = "is not UTF-8"
    except RecursionError:
        problem = f"nests deeper than {MAX_DEPTH} levels"
    except ValueError as error:  # JSONDecodeError, and integers of more than 4300 digits
        problem = f"is not JSON ({checks.shorten(str(error), 80)})"
    raise RequestError("malformed", f"the first frame {problem}; send one UTF-8 JSON object")


def _kind(value: Any) -> str:
    return "an array" if isinstance(value, list) else type(value).__name__


def _too_deep(request: dict[str, Any]) -> bool:
    """Whether ``request`` nests deeper than :data:`MAX_DEPTH` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(request, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, list | dict))
    return False


def field(request: dict[str, Any], name: str, kind: type | tuple, default: Any = ...) -> Any:
    """``request[name]`` if it has type ``kind`` (bools are not numbers), else ``default``.

    Raises:
        RequestError: ``bad_field`` when missing without a default or of another type.
    """
    if name not in request:
        if default is ...:
            raise RequestError("bad_field", f"field {name!r} is required; add it to the request")
        return default
    value = request[name]
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RequestError(
            "bad_field", f"field {name!r} must be {names}, got {checks.shorten(value)}"
        )
    if isinstance(value, str) and len(value) > MAX_TEXT_FIELD:
        raise RequestError(
            "bad_field",
            f"field {name!r} {checks.shorten(value)} is too long; use at most {MAX_TEXT_FIELD}",
        )
    return value


def checked(check: Any, value: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """``check(value, name, ...)`` from :mod:`hrl_runtime.checks`, its refusal as ``bad_field``
    (``non_finite`` for NaN or inf)."""
    try:
        return check(value, f"field {name!r}", *args, **kwargs)
    except ConfigError as error:
        if isinstance(value, float) and not math.isfinite(value):
            fix = "" if ";" in str(error) else "; send a finite number"
            raise RequestError("non_finite", f"{error}{fix}") from None
        raise RequestError("bad_field", str(error)) from None


def numbers(raw: Any, name: str) -> np.ndarray:
    """A flat JSON array of numbers as float64 ``(n,)``; NaN and inf pass (the caller decides).

    Raises:
        RequestError: ``bad_field`` for anything but a flat array of numbers (strings, bools,
            nested arrays, integers beyond float64).
    """
    if not isinstance(raw, list):
        raise RequestError(
            "bad_field", f"field {name!r} must be a flat array of numbers, got {_kind(raw)}"
        )
    for index, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RequestError(
                "bad_field",
                f"field {name!r}[{index}] must be a number, got {checks.shorten(value, 60)}; "
                f"send a flat array of numbers",
            )
        if isinstance(value, int) and abs(value) > checks.MAX_MAGNITUDE:
            raise RequestError(
                "bad_field",
                f"field {name!r}[{index}] {checks.shorten(value, 60)} is out of range; values "
                f"lie in ±{checks.MAX_MAGNITUDE:g}",
            )
    return np.asarray(raw, np.float64)


def within_magnitude(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` if finite and within :data:`~hrl_runtime.checks.MAX_MAGNITUDE`.

    Raises:
        RequestError: ``non_finite`` (NaN or inf) or ``bad_field`` (too large).
    """
    if not np.isfinite(values).all():
        index = int(np.flatnonzero(~np.isfinite(values.ravel()))[0])
        raise RequestError(
            "non_finite", f"field {name!r} has NaN or inf (entry {index}); send finite numbers"
        )
    if values.size and np.abs(values).max() > checks.MAX_MAGNITUDE:
        index = int(np.argmax(np.abs(values.ravel())))
        raise RequestError(
            "bad_field",
            f"field {name!r} entry {index} ({values.ravel()[index]:g}) is out of range; values "
            f"lie in ±{checks.MAX_MAGNITUDE:g}",
        )
    return values


def goals(raw: Any) -> np.ndarray:
    """Goals ``(N, 2)`` from ``[[x, y], ...]``: 1..MAX_GOALS pairs of finite numbers within
    ``MAX_MAGNITUDE`` (:func:`inside` checks them against an arena).

    Raises:
        RequestError: ``bad_field`` (shape, type, magnitude) or ``non_finite``.
    """
    if not isinstance(raw, list) or not 1 <= len(raw) <= checks.MAX_GOALS:
        raise RequestError(
            "bad_field",
            f"field 'goals' must be [[x, y], ...] with 1..{checks.MAX_GOALS} goals, got "
            f"{checks.shorten(raw, 80)}",
        )
    for index, goal in enumerate(raw):
        if not isinstance(goal, list) or len(goal) != 2:
            raise RequestError(
                "bad_field",
                f"field 'goals'[{index}] must be [x, y], got {checks.shorten(goal, 60)}",
            )
    values = numbers([value for goal in raw for value in goal], "goals")
    return within_magnitude(values, "goals").reshape(-1, 2)


def inside(goals: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``goals: (N, 2)`` if every one lies in the arena ``[low, high]`` (``(2,)`` x-y bounds).

    Raises:
        RequestError: ``bad_field`` naming the first goal outside.
    """
    outside = np.flatnonzero(((goals < low) | (goals > high)).any(axis=1))
    if outside.size:
        index = int(outside[0])
        x, y = goals[index]
        raise RequestError(
            "bad_field",
            f"field 'goals'[{index}] ({x:g}, {y:g}) lies outside the arena x in "
            f"[{low[0]:g}, {high[0]:g}], y in [{low[1]:g}, {high[1]:g}]; choose goals inside it",
        )
    return goals


def one_line(text: str, limit: int = 2 * checks.MAX_TEXT) -> str:
    """``text`` on one line (whitespace runs become one space), cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[: limit - 30]}... ({len(line)} characters)"


def mppi_fields(raw: dict[str, Any], config_type: type) -> dict[str, Any]:
    """The ``mppi`` object checked against the fields of ``config_type`` (``MPPIConfig``).

    Raises:
        RequestError: ``bad_field`` for an unknown field, a wrong type or a value out of range.
    """
    known = {f.name: f for f in fields(config_type)}
    checked_fields: dict[str, Any] = {}
    for name, value in raw.items():
        label = f"mppi.{name}"
        if name not in known or name == "seed":
            names = sorted(set(known) - {"seed"})
            raise RequestError(
                "bad_field",
                f"field {checks.shorten(label, 60)} is not an MPPI setting; settings are {names}",
            )
        default = getattr(config_type(), name)
        if name in MAX_MPPI_INTEGERS:
            checked_fields[name] = checked(
                checks.integer,
                value,
                label,
                low=1,
                high=MAX_MPPI_INTEGERS[name],
                fix=f"use 1..{MAX_MPPI_INTEGERS[name]}",
            )
        elif isinstance(default, bool):
            checked_fields[name] = field({label: value}, label, bool)
        elif isinstance(default, float):
            bound = checks.MAX_MAGNITUDE
            checked_fields[name] = checked(checks.real, value, label, low=-bound, high=bound)
        else:
            checked_fields[name] = field({label: value}, label, type(default))
    return checked_fields


PEEK_BYTES = 4096
"""Largest first frame :func:`peek_call` decodes (a control request is a few hundred bytes)."""


def peek_call(frames: list[bytes]) -> str | None:
    """The call a request names, if it is small and reads as one (for refusals that do not run
    it), else None."""
    if not frames or len(frames[0]) > PEEK_BYTES:
        return None
    try:
        return parse_frames(frames)[0]["call"]
    except RequestError as error:
        return error.call

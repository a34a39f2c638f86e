"""Gymnasium ``Box`` spaces to and from plain JSON, as stored in package manifests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium.spaces import Box

from hrl_runtime.checks import shorten
from hrl_runtime.errors import ConfigError

_DTYPES = {"float32": np.float32, "float64": np.float64}
MAX_DIMS = 8
"""Most dimensions a stored space may have."""
MAX_SIZE = 1_000_000
"""Most entries a stored space may have (its bounds are listed entry by entry)."""


def box_to_json(space: Box) -> dict[str, Any]:
    """Describes a ``Box`` as JSON: shape, dtype, and bounds (``null`` for infinite)."""

    def bound(values: np.ndarray) -> list[float | None]:
        return [
            float(v) if np.isfinite(v) else None for v in np.asarray(values, np.float64).ravel()
        ]

    return {
        "shape": list(space.shape),
        "dtype": np.dtype(space.dtype).name,
        "low": bound(space.low),
        "high": bound(space.high),
    }


def box_from_json(spec: Any, field: str) -> Box:
    """Rebuilds a ``Box`` from :func:`box_to_json` output.

    Args:
        spec: the JSON object.
        field: the manifest field it came from, for error messages.

    Raises:
        ConfigError: when the object lacks a key, a value has the wrong type, the shape is too
            large, or the bounds do not fit the shape or cross.
    """
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{field} must be an object with shape/dtype/low/high, got {shorten(spec)}"
        )
    missing = [key for key in ("shape", "dtype", "low", "high") if key not in spec]
    if missing:
        raise ConfigError(f"{field} lacks {', '.join(missing)}")
    shape = _shape(spec["shape"], f"{field}.shape")
    dtype_name = spec["dtype"]
    if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
        raise ConfigError(
            f"{field}.dtype must be one of {sorted(_DTYPES)}, got {shorten(dtype_name)}"
        )
    dtype = _DTYPES[dtype_name]
    size = math.prod(shape)

    def bound(values: Any, name: str, infinity: float) -> np.ndarray:
        if not isinstance(values, list) or len(values) != size:
            raise ConfigError(
                f"{field}.{name} must be a list of {size} numbers (null for infinite) for shape "
                f"{shape}, got {shorten(values)}"
            )
        for value in values:
            real = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not (real and not math.isnan(value)):
                raise ConfigError(
                    f"{field}.{name} holds {shorten(value)}; entries are numbers or null"
                )
        return np.array([infinity if v is None else v for v in values], dtype).reshape(shape)

    low, high = bound(spec["low"], "low", -np.inf), bound(spec["high"], "high", np.inf)
    if np.any(low > high):
        raise ConfigError(f"{field}: low exceeds high somewhere")
    return Box(low=low, high=high, shape=shape, dtype=dtype)


def _shape(value: Any, field: str) -> tuple[int, ...]:
    """A space's shape: a list of at most ``MAX_DIMS`` non-negative ints, ``MAX_SIZE`` entries."""
    if not isinstance(value, list) or len(value) > MAX_DIMS:
        raise ConfigError(
            f"{field} must be a list of at most {MAX_DIMS} integers, got {shorten(value)}"
        )
    for n in value:
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_SIZE:
            raise ConfigError(
                f"{field} entries must be integers in [0, {MAX_SIZE}], got {shorten(n)}"
            )
    if math.prod(value) > MAX_SIZE:
        raise ConfigError(f"{field} {shorten(value)} has more than {MAX_SIZE} entries")
    return tuple(value)


def same_box(a: Box, b: Box) -> bool:
    """True when two boxes have equal shape, dtype and bounds."""
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and np.array_equal(a.low, b.low)
        and np.array_equal(a.high, b.high)
    )

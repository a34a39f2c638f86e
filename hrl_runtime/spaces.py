"""Gymnasium ``Box`` spaces to and from plain JSON, as stored in package manifests."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Box

from hrl_runtime.errors import ConfigError

_DTYPES = {"float32": np.float32, "float64": np.float64}


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
        ConfigError: when the object lacks a key or its values do not fit its shape.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"{field} must be an object with shape/dtype/low/high, got {spec!r}")
    missing = [key for key in ("shape", "dtype", "low", "high") if key not in spec]
    if missing:
        raise ConfigError(f"{field} lacks {', '.join(missing)}")
    shape = tuple(int(n) for n in spec["shape"])
    if spec["dtype"] not in _DTYPES:
        raise ConfigError(f"{field}.dtype must be one of {sorted(_DTYPES)}, got {spec['dtype']!r}")
    dtype = _DTYPES[spec["dtype"]]
    size = int(np.prod(shape))

    def bound(values: Any, name: str, infinity: float) -> np.ndarray:
        if not isinstance(values, list) or len(values) != size:
            raise ConfigError(f"{field}.{name} must be a list of {size} numbers for shape {shape}")
        return np.array([infinity if v is None else v for v in values], dtype).reshape(shape)

    low, high = bound(spec["low"], "low", -np.inf), bound(spec["high"], "high", np.inf)
    if np.any(low > high):
        raise ConfigError(f"{field}: low exceeds high somewhere")
    return Box(low=low, high=high, shape=shape, dtype=dtype)


def same_box(a: Box, b: Box) -> bool:
    """True when two boxes have equal shape, dtype and bounds."""
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and np.array_equal(a.low, b.low)
        and np.array_equal(a.high, b.high)
    )

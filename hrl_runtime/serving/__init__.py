"""Serving skills to an external control loop: the ZeroMQ policy server
(:mod:`hrl_runtime.serving.server`) and its reference client (:mod:`hrl_runtime.serving.client`,
which needs only numpy and pyzmq and runs as ``python -m hrl_runtime.serving.client``).

The names are loaded on first use, so that running the client module imports nothing twice."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HrlClient": "client",
    "ServerError": "client",
    "PolicyServer": "server",
    "ServerConfig": "config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)

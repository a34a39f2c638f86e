"""A trial: one call of an importable function with JSON arguments, run wherever a backend puts it.

Both backends (:mod:`hrl_runtime.experiments.processes`, local processes; Ray in
:mod:`hrl_runtime.experiments.backends`) run a :class:`Trial` through :func:`run_trial` in a
process of its own whose thread pools are pinned to the trial's CPUs, and get back the same
JSON-ready dict, so the same trial gives the same numbers on either.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.errors import HrlError


@dataclass(frozen=True)
class Trial:
    """One unit of work of a sweep or a comparison."""

    function: str
    """``"package.module:function"``, importable on every worker; it returns a JSON-ready dict."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Its keyword arguments (JSON values only: they cross processes and machines)."""
    name: str = ""
    """What the trial is, for progress and errors (default: the function and its arguments)."""

    @property
    def key(self) -> str:
        """Identity of the trial (its function and arguments): a resumed sweep skips a trial
        whose key is already on disk."""
        text = json.dumps([self.function, self.kwargs], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def label(self) -> str:
        """:attr:`name`, or the function and its arguments."""
        return self.name or f"{self.function}({json.dumps(self.kwargs, sort_keys=True)})"


class TrialsFailed(HrlError):
    """Trials failed on every attempt; the others finished (and were streamed to disk)."""

    def __init__(self, failures: dict[str, str], kept: Path | None = None):
        self.failures = failures
        first, reason = next(iter(failures.items()))
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        resume = (
            f"; the finished trials are kept in {kept}: run the same command again to retry "
            "the rest"
            if kept
            else ""
        )
        super().__init__(f"{first} failed on every attempt{more}{resume}: {reason}")


def pinned_threads(cpus: int) -> dict[str, str]:
    """Environment of a trial's process: BLAS and OpenMP pools sized to its ``cpus``, so trials
    side by side do not oversubscribe the cores."""
    threads = str(cpus)
    return {"OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def to_json_ready(value: Any) -> Any:
    """``value`` as plain JSON types (arrays, numpy scalars and paths converted), as it reads
    after a round trip through JSON text, whichever backend carried it."""

    def default(item: Any) -> Any:
        if isinstance(item, np.ndarray):
            return item.tolist()
        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, Path):
            return str(item)
        raise TypeError(f"a trial returned {type(item).__name__}, which is not JSON")

    return json.loads(json.dumps(value, default=default))


def run_trial(function: str, kwargs: dict[str, Any], cpus: int = 1) -> dict[str, Any]:
    """Calls ``function(**kwargs)`` in this process with its thread pools pinned to ``cpus``.

    torch's pool and the BLAS/OpenMP pools (threadpoolctl) are limited for the call, whatever
    the process's environment says: a reused worker (Ray's) is pinned as a fresh one is.

    Args:
        function: ``"package.module:function"``.
        kwargs: its keyword arguments.
        cpus: threads of each pool.

    Returns:
        What the function returned, as JSON types.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(cpus)
    module, _, name = function.partition(":")
    with threadpool_limits(limits=cpus):
        result = getattr(importlib.import_module(module), name)(**kwargs)
    return to_json_ready(result)


def mean_interval(values: list[float]) -> dict[str, Any]:
    """The mean of ``values`` and its 95% confidence interval (Student's t; none for one value).

    Returns:
        ``{"mean", "ci95": [low, high] or None, "n"}``.
    """
    from scipy import stats

    data = np.asarray(values, np.float64)
    mean = float(data.mean())
    if data.size < 2:
        return {"mean": mean, "ci95": None, "n": int(data.size)}
    half = float(stats.t.ppf(0.975, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": int(data.size)}

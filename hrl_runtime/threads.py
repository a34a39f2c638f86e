"""Thread pools, set from inside the program: BLAS, torch and numba pools in one process slow each
other down many times over on a small machine when each sizes itself to every core.

The runtime parallelizes where it pays (numba over planning samples) and keeps every other pool
at one thread while a loop runs: numpy's and scipy's OpenBLAS (numba's matrix products call
scipy's, from inside its parallel region) and torch's intra-op pool (the skills' networks are
small). :class:`ThreadPools` applies that for a scope and restores the host program's settings
when it ends; :func:`pool_report` says what is in effect, for the loops' JSON reports.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from threadpoolctl import ThreadpoolController

import kernels

logger = logging.getLogger(__name__)

_controller: ThreadpoolController | None = None
_controller_modules: frozenset[str] = frozenset()
#: Modules whose import loads another BLAS library (numba's matrix products load scipy's).
_BLAS_MODULES = ("numpy", "scipy.linalg", "torch")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def planner_threads(asynchronous: bool, requested: int | None = None) -> int:
    """Numba threads for planning: ``requested``, else every core when the planner runs on the
    control thread, and one fewer when it runs beside the control thread (which keeps a core)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1, got {requested}")
        return min(requested, kernels.max_threads())
    cores = min(usable_cores(), kernels.max_threads())
    return max(1, cores - 1) if asynchronous else cores


def _torch() -> Any:
    """torch if this process has loaded it (a skill or trainer did), else None: the runtime never
    imports torch just to configure it."""
    return sys.modules.get("torch")


def _blas_controller() -> ThreadpoolController:
    """The process's thread-pool controller; found again only when a module that brings its own
    BLAS has been imported since (finding the loaded libraries takes a few ms)."""
    global _controller, _controller_modules
    loaded = frozenset(name for name in _BLAS_MODULES if name in sys.modules)
    if _controller is None or loaded != _controller_modules:
        _controller = ThreadpoolController()
        _controller_modules = loaded
    return _controller


class SerialBlas:
    """Holds every BLAS library at one thread for a scope (the kernels call single-threaded
    matrix products from inside their own parallel region), then restores the host's setting.

    Costs a few microseconds when the pools already hold one thread (inside the loops, which set
    them for their whole run); the planner enters it at every ``optimize()`` so that a program
    calling it directly, with its BLAS sized to every core, still plans at full speed. OpenBLAS's
    setting is process-wide: concurrent planners in one process should run inside
    :class:`ThreadPools` (as the loops do) so that nothing is restored under another's feet.
    """

    def __init__(self) -> None:
        self._limiter: Any = None

    def __enter__(self) -> SerialBlas:
        blas = _blas_controller().select(user_api="blas")
        if any(lib.get_num_threads() != 1 for lib in blas.lib_controllers):
            self._limiter = blas.limit(limits=1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None


def pool_report() -> dict[str, Any]:
    """The pools in effect now: BLAS libraries and their threads, torch's intra-op threads (None
    when torch is not loaded), the calling thread's numba threads, and the usable cores."""
    torch = _torch()
    blas = {
        os.path.basename(info["filepath"]): info["num_threads"]
        for info in _blas_controller().select(user_api="blas").info()
    }
    return {
        "cores": usable_cores(),
        "blas": blas,
        "torch": torch.get_num_threads() if torch is not None else None,
        "numba": kernels.get_threads(),
    }


class ThreadPools:
    """Sets BLAS, torch and the calling thread's numba pools for a scope, then restores them.

    Args:
        blas: threads of every loaded BLAS library.
        torch: torch intra-op threads (applied only if torch is loaded).
        numba: the calling thread's numba threads; None leaves them.

    Example::

        with ThreadPools(blas=1, torch=1, numba=2):
            planner.optimize()
    """

    def __init__(self, blas: int = 1, torch: int = 1, numba: int | None = None):
        for name, value in (("blas", blas), ("torch", torch), ("numba", numba)):
            if value is not None and value < 1:
                raise ValueError(f"ThreadPools: {name} must be >= 1, got {value}")
        self.blas, self.torch, self.numba = blas, torch, numba
        self._limiter: Any = None
        self._torch_before: int | None = None
        self._numba_before: int | None = None

    def __enter__(self) -> ThreadPools:
        self._limiter = _blas_controller().limit(limits=self.blas, user_api="blas")
        torch = _torch()
        if torch is not None:
            self._torch_before = torch.get_num_threads()
            torch.set_num_threads(self.torch)
        if self.numba is not None:
            self._numba_before = kernels.set_threads(self.numba)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None
        torch = _torch()
        if torch is not None and self._torch_before is not None:
            torch.set_num_threads(self._torch_before)
        self._torch_before = None
        if self._numba_before is not None:
            kernels.set_threads(self._numba_before)
            self._numba_before = None

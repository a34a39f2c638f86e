"""The numba thread count of the calling thread (numba's setting is per thread)."""

from __future__ import annotations

import numba


def max_threads() -> int:
    """Threads numba's pool was started with (``NUMBA_NUM_THREADS``, by default the cores)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def get_threads() -> int:
    """Threads the calling thread's parallel kernels use."""
    return int(numba.get_num_threads())


def set_threads(threads: int) -> int:
    """Sets how many threads the calling thread's parallel kernels use (clamped to
    ``[1, max_threads()]``); returns the previous count. Cheap (a few microseconds)."""
    previous = int(numba.get_num_threads())
    numba.set_num_threads(max(1, min(int(threads), max_threads())))
    return previous

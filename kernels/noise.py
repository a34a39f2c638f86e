"""Exploration noise for sampling-based planners: white Gaussian and time-correlated.

Determinism: ``gaussian_noise`` draws from a ``numpy.random.Generator`` (PCG64), filling the
caller's buffer in place, so the same seed gives the same noise on every run and platform
numpy supports, with no allocation.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def _scale_noise(out, sigma):
    n_samples, horizon, command_dim = out.shape
    for k in range(n_samples):
        for t in range(horizon):
            for d in range(command_dim):
                out[k, t, d] *= sigma[d]


def gaussian_noise(rng: np.random.Generator | int, sigma: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` with zero-mean Gaussian noise of per-dimension scale ``sigma``, in place.

    Args:
        rng: the planner's ``numpy.random.Generator`` (advanced by ``out.size`` normals), or an
            int seed, which draws from a fresh ``default_rng(seed)`` (same noise on every call).
        sigma: (dz,) standard deviation per command dimension.
        out: (K, T, dz) float32, C-contiguous; overwritten with ``sigma * N(0, 1)``.

    Raises:
        TypeError: ``out`` is not a C-contiguous float32 array or ``rng`` is neither kind.
        ValueError: ``sigma`` does not have shape (dz,).
    """
    if isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(int(rng))
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"gaussian_noise: rng must be a numpy.random.Generator or an int seed, "
            f"got {type(rng).__name__}"
        )
    if out.dtype != np.float32 or out.ndim != 3 or not out.flags.c_contiguous:
        raise TypeError(
            f"gaussian_noise: out must be a C-contiguous float32 (K, T, dz) array, got "
            f"dtype={out.dtype}, shape={out.shape}, c_contiguous={out.flags.c_contiguous}"
        )
    if sigma.shape != (out.shape[2],):
        raise ValueError(
            f"gaussian_noise: sigma must have shape (dz,) = ({out.shape[2]},), got {sigma.shape}"
        )
    rng.standard_normal(dtype=np.float32, out=out)
    _scale_noise(out, sigma)


@njit(cache=True, nogil=True, error_model="numpy")
def smooth_noise(noise, beta):
    """Colour noise along time with a first-order filter, in place.

    ``n_0 = e_0``, ``n_t = beta * n_{t-1} + sqrt(1 - beta^2) * e_t``: an AR(1) process whose
    marginal variance equals that of ``e`` (so ``sigma`` keeps its meaning) and whose lag-l
    correlation is ``beta^l``. ``beta = 0`` leaves the noise unchanged; ``beta = 1`` holds
    ``e_0`` for the whole horizon.

    Args:
        noise: (K, T, dz) white noise ``e``; overwritten with ``n``.
        beta: correlation between consecutive steps, in [0, 1].

    Raises:
        ValueError: ``beta`` is outside [0, 1].
    """
    if not (beta >= 0.0 and beta <= 1.0):
        raise ValueError("smooth_noise: beta must be in [0, 1]")
    if beta == 0.0:
        return
    n_samples, horizon, command_dim = noise.shape
    gain = np.sqrt(1.0 - beta * beta)
    for k in range(n_samples):
        for t in range(1, horizon):
            for d in range(command_dim):
                noise[k, t, d] = beta * noise[k, t - 1, d] + gain * noise[k, t, d]

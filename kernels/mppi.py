"""MPPI and CEM plan updates over sampled command sequences.

Infeasible samples: a cost that is NaN, +inf or -inf marks its sample infeasible. It gets MPPI
weight 0 and is never a CEM elite. When no sample is feasible the kernels return 0 and leave the
plan to the caller (``mppi_update`` with all-zero weights returns the clipped mean).
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def mppi_weights(costs, temperature, weights_out):
    """Softmax of ``-cost / temperature`` over the feasible samples (MPPI, Williams et al. 2017).

    ``w_k = exp(-(c_k - c_min) / temperature) / sum_j exp(-(c_j - c_min) / temperature)`` with
    ``c_min`` the smallest finite cost, so the best sample has unnormalised weight 1 and nothing
    overflows, whatever the cost scale (1e30 is fine). Computed in float64.

    Args:
        costs: (K,) sample costs; NaN/+inf/-inf are infeasible (weight 0).
        temperature: lambda > 0; smaller is greedier.
        weights_out: (K,) overwritten: non-negative, summing to 1 when any cost is finite,
            all zeros otherwise. Never NaN.

    Returns:
        The number of feasible (finite-cost) samples; 0 means keep the previous plan.

    Raises:
        ValueError: ``temperature`` is not finite and > 0.
    """
    if not (temperature > 0.0 and temperature < np.inf):
        raise ValueError("mppi_weights: temperature must be finite and > 0")
    n_samples = costs.shape[0]
    n_finite = 0
    lowest = np.inf
    for k in range(n_samples):
        c = np.float64(costs[k])
        if np.isfinite(c):
            n_finite += 1
            if c < lowest:
                lowest = c
    if n_finite == 0:
        for k in range(n_samples):
            weights_out[k] = 0.0
        return 0
    total = 0.0
    for k in range(n_samples):
        c = np.float64(costs[k])
        w = np.exp(-(c - lowest) / temperature) if np.isfinite(c) else 0.0
        weights_out[k] = w
        total += w
    # total >= 1: the best sample contributes exp(0).
    for k in range(n_samples):
        weights_out[k] = np.float64(weights_out[k]) / total
    return n_finite


@njit(cache=True, nogil=True, error_model="numpy")
def mppi_update(mean, noise, weights, low, high, out):
    """New nominal plan ``out = clip(mean + sum_k w_k * noise_k, low, high)``.

    Samples with weight 0 are skipped (so their noise may be anything, even NaN); with all-zero
    weights ``out`` is the clipped ``mean``. An element that comes out non-finite (non-finite
    noise on a weighted sample) keeps the clipped mean. ``out`` may be ``mean`` itself.

    Args:
        mean: (T, dz) current nominal plan.
        noise: (K, T, dz) the perturbations the samples were built from.
        weights: (K,) from ``mppi_weights`` (non-negative, summing to 1 or all 0).
        low: (dz,) lower command bounds.
        high: (dz,) upper command bounds.
        out: (T, dz) overwritten with the updated plan.
    """
    n_samples, horizon, command_dim = noise.shape
    for t in range(horizon):
        for d in range(command_dim):
            nominal = mean[t, d]
            v = nominal
            for k in range(n_samples):
                w = weights[k]
                if w != 0.0:
                    v += w * noise[k, t, d]
            if not np.isfinite(v):
                v = nominal
            out[t, d] = min(max(v, low[d]), high[d])


@njit(cache=True, nogil=True, error_model="numpy")
def perturb(mean, noise, low, high, commands_out):
    """Sampled command sequences ``commands_out[k] = clip(mean + noise[k], low, high)``.

    Args:
        mean: (T, dz) nominal plan.
        noise: (K, T, dz) perturbations.
        low: (dz,) lower command bounds.
        high: (dz,) upper command bounds.
        commands_out: (K, T, dz) overwritten.
    """
    n_samples, horizon, command_dim = noise.shape
    for k in range(n_samples):
        for t in range(horizon):
            for d in range(command_dim):
                v = mean[t, d] + noise[k, t, d]
                commands_out[k, t, d] = min(max(v, low[d]), high[d])


@njit(cache=True, nogil=True, error_model="numpy")
def cem_update(commands, costs, n_elite, mean_out, std_out, min_std):
    """Cross-entropy-method refit to the ``n_elite`` lowest-cost feasible samples.

    Elites are the ``min(n_elite, #finite)`` smallest finite costs (ties broken by lower index;
    NaN/inf never chosen). ``mean_out`` and ``std_out`` get their per-element mean and
    population standard deviation (ddof 0), the latter floored at ``min_std``. Allocates
    nothing: the elite threshold is found by ``n_elite`` linear scans, O(K * n_elite).

    Args:
        commands: (K, T, dz) sampled command sequences.
        costs: (K,) their costs.
        n_elite: number of elites, >= 1.
        mean_out: (T, dz) overwritten with the elite mean (unchanged when 0 is returned).
        std_out: (T, dz) overwritten with the elite std (unchanged when 0 is returned).
        min_std: floor on ``std_out``.

    Returns:
        The number of elites used; 0 if no cost is finite.

    Raises:
        ValueError: ``n_elite`` < 1.
    """
    if n_elite < 1:
        raise ValueError("cem_update: n_elite must be >= 1")
    n_samples, horizon, command_dim = commands.shape
    n_finite = 0
    for k in range(n_samples):
        if np.isfinite(costs[k]):
            n_finite += 1
    n_used = min(n_elite, n_finite)
    if n_used == 0:
        return 0
    # Threshold = the n_used-th smallest (cost, index) pair among finite costs.
    threshold_cost = np.inf
    threshold_index = n_samples
    if n_used < n_finite:
        previous_cost = -np.inf
        previous_index = -1
        for _ in range(n_used):
            best_cost = np.inf
            best_index = -1
            for k in range(n_samples):
                c = costs[k]
                if not np.isfinite(c):
                    continue
                if c < previous_cost or (c == previous_cost and k <= previous_index):
                    continue
                if best_index < 0 or c < best_cost:
                    best_cost = c
                    best_index = k
            previous_cost = best_cost
            previous_index = best_index
        threshold_cost = previous_cost
        threshold_index = previous_index

    for t in range(horizon):
        for d in range(command_dim):
            total = 0.0
            for k in range(n_samples):
                c = costs[k]
                if np.isfinite(c) and (
                    c < threshold_cost or (c == threshold_cost and k <= threshold_index)
                ):
                    total += commands[k, t, d]
            mean = total / n_used
            squares = 0.0
            for k in range(n_samples):
                c = costs[k]
                if np.isfinite(c) and (
                    c < threshold_cost or (c == threshold_cost and k <= threshold_index)
                ):
                    diff = commands[k, t, d] - mean
                    squares += diff * diff
            mean_out[t, d] = mean
            std_out[t, d] = max(np.sqrt(squares / n_used), min_std)
    return n_used


@njit(cache=True, nogil=True, error_model="numpy")
def shift_plan(mean, fill):
    """Warm start in place: drop the executed first step, append ``fill`` at the end.

    Args:
        mean: (T, dz) nominal plan, shifted in place.
        fill: (dz,) command for the new last step (e.g. the old last step or a prior mean).
    """
    horizon, command_dim = mean.shape
    if horizon == 0:
        return
    for t in range(horizon - 1):
        for d in range(command_dim):
            mean[t, d] = mean[t + 1, d]
    for d in range(command_dim):
        mean[horizon - 1, d] = fill[d]

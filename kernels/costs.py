"""Per-sample trajectory costs for sampling-based planners.

``goal_cost`` overwrites its output; ``smoothness_cost`` and ``bounds_cost`` add to it, so a
planner computes ``goal_cost(...)`` then accumulates the regularisers into the same (K,) array.
NaN states or commands give NaN costs, which ``mppi_weights``/``cem_update`` treat as infeasible.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def goal_cost(states, goal, goal_dims, step_weight, terminal_weight, out, squared=True):
    """Distance-to-goal cost of each rolled-out trajectory (overwrites ``out``).

    ``out[k] = step_weight * sum_{t=1}^{T-1} d(s_t) + terminal_weight * d(s_T)`` with
    ``d(s) = ||s[goal_dims] - goal||^2`` (``squared=True``) or its square root (Euclidean).
    ``s_0`` (the current state, not affected by the plan) is not counted.

    Args:
        states: (K, T + 1, ds) rolled-out states, ``states[:, 0]`` the start state.
        goal: (dg,) goal for the selected state dimensions.
        goal_dims: (dg,) int64 indices into ds.
        step_weight: weight of each intermediate step t = 1..T-1.
        terminal_weight: weight of the final step T.
        out: (K,) overwritten with the costs.
        squared: squared Euclidean distance (default) or Euclidean distance.
    """
    n_samples, n_states, _ = states.shape
    horizon = n_states - 1
    n_goal = goal.shape[0]
    for k in range(n_samples):
        total = 0.0
        for t in range(1, n_states):
            dist = 0.0
            for g in range(n_goal):
                diff = states[k, t, goal_dims[g]] - goal[g]
                dist += diff * diff
            if not squared:
                dist = np.sqrt(dist)
            total += (terminal_weight if t == horizon else step_weight) * dist
        out[k] = total


@njit(cache=True, nogil=True, error_model="numpy")
def smoothness_cost(commands, previous, weight, out):
    """Add ``weight * sum_{t=0}^{T-1} ||z_t - z_{t-1}||^2`` to ``out``, with ``z_{-1} = previous``.

    Args:
        commands: (K, T, dz) command sequences.
        previous: (dz,) command currently applied (the plan's predecessor).
        weight: scale of the penalty.
        out: (K,) costs, accumulated into.
    """
    n_samples, horizon, command_dim = commands.shape
    for k in range(n_samples):
        total = 0.0
        for d in range(command_dim):
            diff = commands[k, 0, d] - previous[d]
            total += diff * diff
        for t in range(1, horizon):
            for d in range(command_dim):
                diff = commands[k, t, d] - commands[k, t - 1, d]
                total += diff * diff
        out[k] += weight * total


@njit(cache=True, nogil=True, error_model="numpy")
def bounds_cost(commands, low, high, weight, out):
    """Add ``weight * sum_{t,d} (max(low_d - z, 0) + max(z - high_d, 0))^2`` to ``out``.

    Args:
        commands: (K, T, dz) command sequences.
        low: (dz,) lower bounds.
        high: (dz,) upper bounds.
        weight: scale of the penalty.
        out: (K,) costs, accumulated into.
    """
    n_samples, horizon, command_dim = commands.shape
    for k in range(n_samples):
        total = 0.0
        for t in range(horizon):
            for d in range(command_dim):
                z = commands[k, t, d]
                if z < low[d]:
                    total += (low[d] - z) * (low[d] - z)
                elif z > high[d]:
                    total += (z - high[d]) * (z - high[d])
        out[k] += weight * total

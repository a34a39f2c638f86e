"""Numba kernels for sampling-based planning over learned skill dynamics.

Plain ``@njit(cache=True, nogil=True)`` functions over numpy arrays (numpy and numba only).
Every array argument's shape is in its docstring (K samples, T horizon, ds state, dz command,
H hidden). Float arrays are float32 (the dtype ``warmup`` compiles for), index arrays int64.
Hot-path kernels allocate nothing: callers pass preallocated outputs and workspaces.
Call ``warmup()`` once when a planner is built so that no compilation happens in a control tick.
"""

import numpy as np

from kernels._activations import TANH_MAX_ABS_ERROR, fast_tanh, tanh_inplace
from kernels.costs import bounds_cost, goal_cost, smoothness_cost
from kernels.mlp import (
    MLPWeights,
    RolloutWorkspace,
    make_mlp_weights,
    make_rollout_workspace,
    mlp_layers,
    rollout,
)
from kernels.mppi import cem_update, mppi_update, mppi_weights, perturb, shift_plan
from kernels.noise import gaussian_noise, smooth_noise
from kernels.threads import get_threads, max_threads, set_threads

__all__ = [
    "TANH_MAX_ABS_ERROR",
    "MLPWeights",
    "RolloutWorkspace",
    "bounds_cost",
    "cem_update",
    "fast_tanh",
    "gaussian_noise",
    "get_threads",
    "goal_cost",
    "make_mlp_weights",
    "make_rollout_workspace",
    "max_threads",
    "mlp_layers",
    "mppi_update",
    "mppi_weights",
    "perturb",
    "rollout",
    "set_threads",
    "shift_plan",
    "smooth_noise",
    "smoothness_cost",
    "tanh_inplace",
    "warmup",
]


def warmup() -> None:
    """Compile (or load from the on-disk cache) every kernel for float32 inputs.

    Runs one tiny planning iteration (K=4, T=3, ds=2, dz=1) for each activation and head.
    """
    f32 = np.float32
    n_samples, horizon, state_dim, command_dim, hidden = 4, 3, 2, 1, 3
    input_dim = state_dim + command_dim
    sigma = np.ones(command_dim, f32)
    low = np.full(command_dim, -1.0, f32)
    high = np.full(command_dim, 1.0, f32)
    mean = np.zeros((horizon, command_dim), f32)
    std = np.ones((horizon, command_dim), f32)
    noise = np.empty((n_samples, horizon, command_dim), f32)
    commands = np.empty_like(noise)
    states = np.empty((n_samples, horizon + 1, state_dim), f32)
    costs = np.empty(n_samples, f32)
    weights = np.empty(n_samples, f32)

    gaussian_noise(0, sigma, noise)
    smooth_noise(noise, 0.5)
    perturb(mean, noise, low, high, commands)
    for activation in ("tanh", "relu"):
        for head, out_dim in (("mean", state_dim), ("mog", 2 * (1 + state_dim))):
            network = make_mlp_weights(
                [np.full((input_dim, hidden), 0.1, f32)],
                [np.zeros(hidden, f32)],
                np.full((hidden, out_dim), 0.1, f32),
                np.zeros(out_dim, f32),
                in_mean=np.zeros(input_dim, f32),
                in_std=np.ones(input_dim, f32),
                out_mean=np.zeros(state_dim, f32),
                out_std=np.ones(state_dim, f32),
                activation=activation,
                head=head,
                n_components=1 if head == "mean" else 2,
            )
            workspace = make_rollout_workspace(n_samples, network)
            rollout(np.zeros(state_dim, f32), commands, network, states, workspace)
    for squared in (True, False):
        goal_cost(states, np.zeros(1, f32), np.zeros(1, np.int64), 1.0, 10.0, costs, squared)
    smoothness_cost(commands, np.zeros(command_dim, f32), 0.1, costs)
    bounds_cost(commands, low, high, 1.0, costs)
    mppi_weights(costs, 1.0, weights)
    mppi_update(mean, noise, weights, low, high, mean)
    cem_update(commands, costs, 2, mean, std, 0.01)
    shift_plan(mean, np.zeros(command_dim, f32))
    tanh_inplace(np.zeros(4, f32))

"""The contenders of the planning-latency benchmark (:mod:`hrl_runtime.experiments.planning_bench`)
on one shared, seeded skill-dynamics network, and the float64 rollout that checks them.

Each contender is built by :func:`setup_contender` as ``(iterate, check)``: one planning iteration,
and a callable returning the max abs error of its rollout against :func:`reference_rollout`, so
nobody wins by computing less.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

CONTENDERS = (
    "hrl_mppi",
    "pytorch_mppi",
    "pytorch_mppi_inference",
    "torch_loop",
    "gemm_floor_blas",
    "gemm_floor_blocks",
)
FLOORS = ("gemm_floor_blas", "gemm_floor_blocks")
ROLLOUT_TOLERANCE = 2e-3  # max |float32 - float64| over the rollout, in state units


@dataclass(frozen=True)
class Workload:
    """One planning problem size."""

    num_samples: int = 1024
    """K: sampled command sequences."""
    horizon: int = 10
    """T: held commands per sequence."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the dynamics MLP."""
    state_dim: int = 4
    """ds."""
    command_dim: int = 2
    """dz."""
    seed: int = 0
    """Seed of the network weights and of the sampling noise."""


# --- the shared network and its float64 reference ----------------------------------------------
def build_network(workload: Workload):
    """The seeded dynamics network (same weights in every process)."""
    import torch

    from skill_library.networks import DynamicsNetConfig, SkillDynamicsNet

    generator = torch.Generator().manual_seed(workload.seed)
    torch.manual_seed(workload.seed)
    config = DynamicsNetConfig(
        state_dim=workload.state_dim,
        command_dim=workload.command_dim,
        hidden=workload.hidden,
        activation="tanh",
        num_experts=0,
        residual=True,
    )
    network = SkillDynamicsNet(config)
    inputs = torch.randn(4096, workload.state_dim + workload.command_dim, generator=generator)
    network.in_norm.fit(inputs * 2.0)
    network.out_norm.fit(torch.randn(4096, workload.state_dim, generator=generator) * 0.1)
    return network


def reference_rollout(exported: dict[str, Any], state0: np.ndarray, commands: np.ndarray):
    """Float64 numpy rollout of an exported MLP: ``(ds,), (K, T, dz) -> (K, T + 1, ds)``."""
    f64 = np.float64
    K, T, _ = commands.shape
    states = np.empty((K, T + 1, state0.size), f64)
    states[:, 0] = state0
    for t in range(T):
        x = (np.concatenate([states[:, t], commands[:, t]], -1) - exported["in_mean"]) / exported[
            "in_std"
        ]
        for weight, bias in zip(exported["hidden_weights"], exported["hidden_biases"], strict=True):
            x = np.tanh(x @ weight.astype(f64) + bias)
        y = x @ exported["out_weight"].astype(f64) + exported["out_bias"]
        states[:, t + 1] = states[:, t] + y * exported["out_std"] + exported["out_mean"]
    return states


def _problem(workload: Workload):
    rng = np.random.default_rng(workload.seed + 1)
    state0 = rng.normal(size=workload.state_dim).astype(np.float32)
    goal = np.array([1.5, -1.0], np.float32)
    return state0, goal


# --- contenders: each returns (iteration callable, check callable) -----------------------------
def hrl_mppi_contender(workload: Workload):
    """This project's numba MPPI planner (:class:`planners.mppi.LatentMPPI`) on ``workload``.

    Returns:
        ``(iterate, check)``: one planner iteration (the bound ``optimize``) and a callable
        returning the max abs error of the planner's rollout against :func:`reference_rollout`.
    """
    from gymnasium.spaces import Box

    from hrl_runtime.skill import Skill
    from planners.mppi import LatentMPPI, MPPIConfig
    from skill_library.dynamics import LearnedDynamics

    class BenchSkill(Skill):
        kind = "benchmark"

        def act(self, obs, command):
            return command

        def package_config(self):
            return {}

        def package_tensors(self):
            return {}

        @classmethod
        def from_package(cls, package):
            raise NotImplementedError

    network = build_network(workload)
    ds, dz = workload.state_dim, workload.command_dim
    skill = BenchSkill(
        Box(-np.inf, np.inf, (ds,), np.float32),
        Box(-1.0, 1.0, (dz,), np.float32),
        Box(-1.0, 1.0, (dz,), np.float32),
        hold_steps=1,
        dynamics=LearnedDynamics(network, tuple(range(ds))),
    )
    config = MPPIConfig(
        num_samples=workload.num_samples,
        horizon=workload.horizon,
        temperature=1.0,
        noise_scale=0.5,
        step_weight=1.0,
        terminal_weight=1.0,
        squared_distance=True,
        backend="numba",
        seed=workload.seed,
    )
    planner = LatentMPPI(skill, config, goal_dims=(0, 1))
    state0, goal = _problem(workload)
    planner.reset(state0)
    planner.set_goal(goal)
    exported = network.export_mlp()

    def check() -> float:
        reference = reference_rollout(exported, state0, planner.commands)
        return float(np.max(np.abs(planner.states - reference)))

    return planner.optimize, check


def _pytorch_mppi(workload: Workload, inference: bool):
    import torch
    from pytorch_mppi import MPPI

    network = build_network(workload)
    state0, goal = _problem(workload)
    goal_t = torch.from_numpy(goal)
    recorded: list[torch.Tensor] = []

    def dynamics(state, action):
        return network(state, action)

    def running_cost(state, action):
        if recording[0]:
            recorded.append(state.detach().clone())
        return ((state[:, :2] - goal_t) ** 2).sum(-1)

    recording = [False]
    # As pytorch_mppi's README shows it.
    controller = MPPI(
        dynamics,
        running_cost,
        workload.state_dim,
        noise_sigma=torch.eye(workload.command_dim) * 0.25,
        num_samples=workload.num_samples,
        horizon=workload.horizon,
        lambda_=1.0,
        u_min=-torch.ones(workload.command_dim),
        u_max=torch.ones(workload.command_dim),
    )
    state = torch.from_numpy(state0)

    def iterate():
        if inference:
            with torch.inference_mode():
                controller.command(state)
        else:
            controller.command(state)

    exported = network.export_mlp()

    def check() -> float:
        recorded.clear()
        recording[0] = True
        iterate()
        recording[0] = False
        states = torch.stack(recorded, 1).numpy()
        commands = controller.perturbed_action.detach().numpy()
        reference = reference_rollout(exported, state0, commands)
        return float(np.max(np.abs(states - reference[:, 1:])))

    return iterate, check


def _torch_loop(workload: Workload):
    import torch

    network = build_network(workload)
    state0, goal = _problem(workload)
    K, T, ds, dz = workload.num_samples, workload.horizon, workload.state_dim, workload.command_dim
    generator = torch.Generator().manual_seed(workload.seed)
    mean = torch.zeros(T, dz)
    goal_t = torch.from_numpy(goal)
    state = torch.from_numpy(state0)
    last: dict[str, torch.Tensor] = {}

    @torch.inference_mode()
    def iterate():
        noise = torch.randn(K, T, dz, generator=generator) * 0.5
        commands = (mean + noise).clamp_(-1.0, 1.0)
        states = torch.empty(K, T + 1, ds)
        states[:, 0] = state
        cost = torch.zeros(K)
        s = state.expand(K, ds)
        for t in range(T):
            s = network(s, commands[:, t])
            states[:, t + 1] = s
            cost += ((s[:, :2] - goal_t) ** 2).sum(-1)
        weights = torch.softmax(-(cost - cost.min()) / 1.0, 0)
        mean.copy_((weights[:, None, None] * commands).sum(0))
        last["states"], last["commands"] = states, commands

    exported = network.export_mlp()

    def check() -> float:
        iterate()
        reference = reference_rollout(exported, state0, last["commands"].numpy())
        return float(np.max(np.abs(last["states"].numpy() - reference)))

    return iterate, check


def _block_gemms(buffers, weights, horizon: int, n_blocks: int) -> None:
    """The W1 GEMMs with the samples split into ``n_blocks`` parallel blocks (numba prange),
    each on single-threaded BLAS: the layout our rollout kernel uses, without anything else."""
    from numba import njit, prange

    global _BLOCK_GEMMS
    if _BLOCK_GEMMS is None:

        @njit(parallel=True, nogil=True, cache=True)
        def block_gemms(x, w1, w2, w3, h1, h2, out, horizon, n_blocks):
            samples = x.shape[0]
            for block in prange(n_blocks):
                lo, hi = block * samples // n_blocks, (block + 1) * samples // n_blocks
                for _ in range(horizon):
                    np.dot(x[lo:hi], w1, h1[lo:hi])
                    np.dot(h1[lo:hi], w2, h2[lo:hi])
                    np.dot(h2[lo:hi], w3, out[lo:hi])

        _BLOCK_GEMMS = block_gemms
    _BLOCK_GEMMS(*buffers[:1], *weights, *buffers[1:], horizon, n_blocks)


_BLOCK_GEMMS = None


def _gemm_floor(workload: Workload, blocks: bool):
    network = build_network(workload)
    exported = network.export_mlp()
    K, T = workload.num_samples, workload.horizon
    layers = [*zip(exported["hidden_weights"], exported["hidden_biases"], strict=True)]
    layers.append((exported["out_weight"], exported["out_bias"]))
    weights = [np.ascontiguousarray(w, np.float32) for w, _ in layers]
    buffers = [np.ones((K, weights[0].shape[0]), np.float32)]
    buffers += [np.empty((K, w.shape[1]), np.float32) for w in weights]

    def iterate():
        for _ in range(T):
            for index, weight in enumerate(weights):
                np.dot(buffers[index], weight, out=buffers[index + 1])

    if blocks:
        if len(weights) != 3:
            raise ValueError("the block GEMM floor is written for two hidden layers")
        from numba import get_num_threads

        n_blocks = get_num_threads()

        def iterate():
            _block_gemms(buffers, weights, T, n_blocks)

    return iterate, lambda: None  # the floor computes no rollout to check


def setup_contender(contender: str, workload: Workload):
    """Builds one contender on ``workload``.

    Args:
        contender: One of :data:`CONTENDERS`.
        workload: The problem size.

    Returns:
        ``(iterate, check)``: one planning iteration, and a callable returning the rollout's max
        abs error against the float64 reference (None for the GEMM floors, which roll nothing out).

    Raises:
        ValueError: For an unknown contender.
    """
    if contender == "hrl_mppi":
        return hrl_mppi_contender(workload)
    if contender in ("pytorch_mppi", "pytorch_mppi_inference"):
        return _pytorch_mppi(workload, inference=contender.endswith("inference"))
    if contender == "torch_loop":
        return _torch_loop(workload)
    if contender in FLOORS:
        return _gemm_floor(workload, blocks=contender == "gemm_floor_blocks")
    raise ValueError(f"unknown contender {contender!r}; choose one of {CONTENDERS}")

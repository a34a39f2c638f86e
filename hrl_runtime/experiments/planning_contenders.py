"""The contenders of the planning-latency benchmark (:mod:`hrl_runtime.experiments.planning_bench`)
on one shared, seeded skill-dynamics network, and the float64 rollout that checks them.

Each contender is built by :func:`setup_contender` as ``(iterate, check)``: one planning iteration,
and a callable returning the max abs error of its rollout against :func:`reference_rollout`, so
nobody wins by computing less. The check runs one more iteration of its own, outside any timed
region, and records that iteration's rollout through a forward hook on the network (no hook is
registered while the contender is timed).

The torch peers are written the way their own users write them: the shared network as a plain
``nn.Sequential`` (Linear-Tanh-Linear-Tanh-Linear) with the input and output normalization folded
into the first and last Linear (:func:`folded_sequential`) and the residual update written out,
``dynamics(s, a) = s + net(cat(s, a))``; pytorch_mppi called as its README shows it; a batched
torch loop under ``torch.inference_mode()``. ``pytorch_mppi_skillnet`` keeps pytorch_mppi on this
project's :class:`~skill_library.networks.SkillDynamicsNet` module as a separate row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DESCRIPTIONS = {
    "hrl_mppi": "this project's numba LatentMPPI",
    "pytorch_mppi": "pytorch_mppi MPPI.command as its README shows it, on a plain nn.Sequential",
    "pytorch_mppi_inference": "the same under torch.inference_mode()",
    "torch_loop": "a plain batched torch MPPI loop on the nn.Sequential, inference_mode",
    "pytorch_mppi_skillnet": "pytorch_mppi MPPI.command on this project's SkillDynamicsNet module",
    "gemm_floor_blas": "the W1 float32 GEMMs alone, OpenBLAS threads",
    "gemm_floor_blocks": "the W1 float32 GEMMs alone, parallel sample blocks (numba)",
}
"""What each contender runs, one line each (the benchmark's table and JSON show them)."""
CONTENDERS = tuple(DESCRIPTIONS)
FLOORS = ("gemm_floor_blas", "gemm_floor_blocks")
TORCH_PEERS = ("pytorch_mppi", "pytorch_mppi_inference", "torch_loop", "pytorch_mppi_skillnet")
"""The contenders that run torch (their process gets torch's intra-op pool)."""
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


def folded_sequential(exported: dict[str, Any]):
    """The exported network as the plain ``nn.Sequential`` a torch user writes: Linear, activation,
    ..., Linear, with the input normalization folded into the first Linear and the output
    de-normalization into the last, so ``net(cat(s, z))`` is the state change in state units.

    Args:
        exported: :meth:`SkillDynamicsNet.export_mlp` of a network with a plain mean head.

    Returns:
        An ``nn.Sequential`` mapping ``(B, ds + dz) -> (B, ds)``, float32; the dynamics is
        ``s + net(cat(s, z))`` when ``exported["residual"]``, else ``net(cat(s, z))``.

    Raises:
        ValueError: For a mixture head (it is not a plain MLP).
    """
    import torch
    from torch import nn

    from skill_library.networks import ACTIVATIONS

    if exported["head"] != "mean":
        raise ValueError(
            f"folded_sequential needs a plain mean head (num_experts=0), got {exported['head']!r}"
        )
    f64 = np.float64
    weights = [w.astype(f64) for w in [*exported["hidden_weights"], exported["out_weight"]]]
    biases = [b.astype(f64) for b in [*exported["hidden_biases"], exported["out_bias"]]]
    in_mean, in_std = exported["in_mean"].astype(f64), exported["in_std"].astype(f64)
    # ((x - m) / s) @ W + b = x @ (W / s[:, None]) + (b - (m / s) @ W)
    biases[0] = biases[0] - (in_mean / in_std) @ weights[0]
    weights[0] = weights[0] / in_std[:, None]
    # (h @ W + b) * s + m = h @ (W * s) + (b * s + m)
    out_mean, out_std = exported["out_mean"].astype(f64), exported["out_std"].astype(f64)
    weights[-1] = weights[-1] * out_std
    biases[-1] = biases[-1] * out_std + out_mean
    layers: list[nn.Module] = []
    for weight, bias in zip(weights, biases, strict=True):
        linear = nn.Linear(*weight.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight.T.astype(np.float32)))
            linear.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        layers += [linear, ACTIVATIONS[exported["activation"]]()]
    return nn.Sequential(*layers[:-1])


def _sequential_dynamics(workload: Workload):
    """``(dynamics, net, exported)``: the folded ``nn.Sequential`` and the dynamics callable a
    pytorch_mppi user hands over (``(K, ds), (K, dz) -> (K, ds)``)."""
    import torch

    exported = build_network(workload).export_mlp()
    net = folded_sequential(exported)
    if exported["residual"]:

        def dynamics(state, action):
            return state + net(torch.cat([state, action], -1))
    else:

        def dynamics(state, action):
            return net(torch.cat([state, action], -1))

    return dynamics, net, exported


def _checker(net, iterate, exported, state0: np.ndarray, workload: Workload, skillnet: bool):
    """A check for a torch contender: runs ``iterate`` once with a forward hook on ``net`` that
    records every step's state, command and next state ``(K, ds), (K, dz), (K, ds)``, then
    compares the states with :func:`reference_rollout` from ``state0`` on the recorded commands."""
    ds = workload.state_dim

    def record(_module, args, output) -> None:
        def array(tensor):
            return tensor.detach().cpu().numpy().copy()

        if skillnet:  # SkillDynamicsNet(states, commands) -> next states
            state, command, next_state = array(args[0]), array(args[1]), array(output)
        else:  # nn.Sequential(cat(states, commands)) -> state change
            inputs = array(args[0])
            state, command = inputs[:, :ds], inputs[:, ds:]
            next_state = state + array(output) if exported["residual"] else array(output)
        steps.append((state, command, next_state))

    steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def check() -> float:
        steps.clear()
        handle = net.register_forward_hook(record)
        try:
            iterate()
        finally:
            handle.remove()
        commands = np.stack([command for _, command, _ in steps], 1)
        expected = (workload.num_samples, workload.horizon, workload.command_dim)
        if commands.shape != expected:
            raise ValueError(f"rolled out commands of shape {commands.shape}, expected {expected}")
        # The states fed to the network and the ones it produced, both against the reference.
        states_in = np.stack([state for state, _, _ in steps], 1)
        states_out = np.stack([next_state for _, _, next_state in steps], 1)
        reference = reference_rollout(exported, state0, commands)
        errors = [np.abs(states_in - reference[:, :-1]), np.abs(states_out - reference[:, 1:])]
        return float(max(error.max() for error in errors))

    return check


def _pytorch_mppi(workload: Workload, inference: bool, skillnet: bool = False):
    """pytorch_mppi's ``MPPI`` built and called as its README shows it (``command(state)`` once
    per iteration), on the folded ``nn.Sequential`` or, with ``skillnet``, on our module."""
    import torch
    from pytorch_mppi import MPPI

    torch.manual_seed(workload.seed)
    if skillnet:
        network = build_network(workload)
        dynamics, net, exported = network, network, network.export_mlp()
    else:
        dynamics, net, exported = _sequential_dynamics(workload)
    state0, goal = _problem(workload)
    goal_t = torch.from_numpy(goal)

    def running_cost(state, action):
        return ((state[:, :2] - goal_t) ** 2).sum(-1)

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
        device="cpu",
    )
    state = torch.from_numpy(state0)

    def iterate():
        controller.command(state)

    def iterate_inference():
        with torch.inference_mode():
            controller.command(state)

    timed = iterate_inference if inference else iterate
    return timed, _checker(net, timed, exported, state0, workload, skillnet)


def _torch_loop(workload: Workload):
    """MPPI as a torch user writes it in a few lines: sample, roll the K samples through T steps
    of the ``nn.Sequential`` as one batch, softmax weights, weighted mean, under inference_mode."""
    import torch

    torch.manual_seed(workload.seed)
    dynamics, net, exported = _sequential_dynamics(workload)
    state0, goal = _problem(workload)
    K, T, ds, dz = workload.num_samples, workload.horizon, workload.state_dim, workload.command_dim
    goal_t, state = torch.from_numpy(goal), torch.from_numpy(state0)
    mean = torch.zeros(T, dz)
    noise_scale, temperature = 0.5, 1.0

    @torch.inference_mode()
    def iterate():
        commands = (mean + noise_scale * torch.randn(K, T, dz)).clamp_(-1.0, 1.0)
        s = state.expand(K, ds)
        cost = torch.zeros(K)
        for t in range(T):
            s = dynamics(s, commands[:, t])
            cost += ((s[:, :2] - goal_t) ** 2).sum(-1)
        weights = torch.softmax(-cost / temperature, 0)
        mean.copy_((weights[:, None, None] * commands).sum(0))

    return iterate, _checker(net, iterate, exported, state0, workload, skillnet=False)


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
    if contender == "pytorch_mppi_skillnet":
        return _pytorch_mppi(workload, inference=False, skillnet=True)
    if contender == "torch_loop":
        return _torch_loop(workload)
    if contender in FLOORS:
        return _gemm_floor(workload, blocks=contender == "gemm_floor_blocks")
    raise ValueError(f"unknown contender {contender!r}; choose one of {CONTENDERS}")

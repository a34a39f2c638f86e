"""The meta-learned skill dynamics network and its functional form for MAML."""

from __future__ import annotations

import torch
from torch.func import functional_call

from skill_library.networks import DynamicsNetConfig, SkillDynamicsNet


def make_dynamics_net(
    state_dim: int, command_dim: int, hidden: tuple[int, ...]
) -> SkillDynamicsNet:
    """A tanh MLP with a plain mean head over the state change (residual): the form whose
    gradient the online adapter computes by hand and the numba kernels roll out."""
    config = DynamicsNetConfig(
        state_dim=state_dim,
        command_dim=command_dim,
        hidden=tuple(hidden),
        activation="tanh",
        num_experts=0,
        fixed_variance=True,
        residual=True,
    )
    return SkillDynamicsNet(config)


def parameters(network: SkillDynamicsNet) -> dict[str, torch.Tensor]:
    """The trainable parameters theta by name (the normalizers are buffers, never adapted)."""
    return {name: p for name, p in network.named_parameters()}


def predict(
    network: SkillDynamicsNet,
    params: dict[str, torch.Tensor],
    states: torch.Tensor,
    commands: torch.Tensor,
) -> torch.Tensor:
    """``f_theta(s, z)``: the mean next state with parameters ``params`` in place of the module's.

    Args:
        network: supplies the architecture and the normalization buffers.
        params: name -> tensor for every trainable parameter (e.g. adapted ones).
        states: ``(B, ds)``.
        commands: ``(B, dz)``.

    Returns:
        ``(B, ds)`` predicted next states.
    """
    return functional_call(network, params, (states, commands))

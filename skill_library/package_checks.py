"""Shapes a network's configuration implies, for the kinds' ``check_package`` hooks.

A kind checks its ``config`` against the tensors a package lists by building the network on
PyTorch's ``meta`` device (parameters with shapes and no storage) and comparing state-dict shapes,
so a mismatch is refused with the tensor's name before any weight is read or allocated.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hrl_runtime.package_schema import Fields
from skill_library.networks import ACTIVATIONS, DynamicsNetConfig, SkillDynamicsNet

MAX_WIDTH = 65_536
"""Widest hidden layer a package's config may ask for."""
MAX_LAYERS = 32
"""Most hidden layers a package's config may ask for."""


def module_shapes(build: Callable[[], torch.nn.Module]) -> dict[str, tuple[int, ...]]:
    """State-dict name -> shape of the module ``build()`` returns, built without storage.

    Args:
        build: Makes the module from a checked configuration.

    Returns:
        The shape of every parameter and buffer, by state-dict name.
    """
    with torch.device("meta"):
        module = build()
    return {name: tuple(value.shape) for name, value in module.state_dict().items()}


def check_dynamics_config(
    config: Fields, obs_dim: int, command_dim: int
) -> dict[str, tuple[int, ...]]:
    """Checks a :class:`~skill_library.dynamics.LearnedDynamics` config (``config_json`` output).

    Args:
        config: The ``dynamics`` object of a package's config.
        obs_dim: do, size of the observation the state indices pick from.
        command_dim: dz, size of the command the network reads.

    Returns:
        The tensor shapes of the network the config describes.

    Raises:
        PackageError: naming the key at fault.
    """
    config.keys(("network", "state_indices"))
    indices = config.integers("state_indices", 0, obs_dim - 1, min_length=1, max_length=obs_dim)
    network = config.section("network")
    network.keys(
        ("state_dim", "command_dim"),
        ("hidden", "activation", "num_experts", "fixed_variance", "residual"),
    )
    if network.integer("state_dim", 1, obs_dim) != len(indices):
        raise network.error("state_dim", f"differs from the {len(indices)} state_indices")
    if network.integer("command_dim", 1, 1024) != command_dim:
        raise network.error("command_dim", f"differs from the skill's command size {command_dim}")
    shape = DynamicsNetConfig(
        state_dim=len(indices),
        command_dim=command_dim,
        hidden=network.integers("hidden", 1, MAX_WIDTH, (256, 256), max_length=MAX_LAYERS),
        activation=network.text("activation", default="tanh", choices=ACTIVATIONS),
        num_experts=network.integer("num_experts", 0, 256, default=4),
        fixed_variance=network.boolean("fixed_variance", default=False),
        residual=network.boolean("residual", default=True),
    )
    return module_shapes(lambda: SkillDynamicsNet(shape))

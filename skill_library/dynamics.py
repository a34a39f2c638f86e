"""Learned skill dynamics as a :class:`~hrl_runtime.skill.SkillDynamics` component."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from hrl_runtime.skill import SkillDynamics
from skill_library.networks import DynamicsNetConfig, SkillDynamicsNet


class LearnedDynamics(SkillDynamics):
    """Wraps a :class:`SkillDynamicsNet` over the observation entries ``state_indices``.

    Args:
        network: the torch model (kept in eval mode, float32, on the CPU).
        state_indices: observation entries forming the planning state ``s``.
    """

    def __init__(self, network: SkillDynamicsNet, state_indices: tuple[int, ...]):
        if len(state_indices) != network.config.state_dim:
            raise ValueError(
                f"state_indices has {len(state_indices)} entries but the network's state_dim is "
                f"{network.config.state_dim}"
            )
        self.network = network.eval()
        self.state_indices = tuple(int(i) for i in state_indices)

    @torch.no_grad()
    def predict(self, states: np.ndarray, commands: np.ndarray) -> np.ndarray:
        s = torch.as_tensor(np.asarray(states, np.float32))
        z = torch.as_tensor(np.asarray(commands, np.float32))
        return self.network(s, z).numpy()

    def export_mlp(self) -> dict[str, Any]:
        return self.network.export_mlp()

    def torch_module(self) -> SkillDynamicsNet:
        return self.network

    # --- packaging helpers ---------------------------------------------------------------
    def config_json(self) -> dict[str, Any]:
        """The architecture and state indices, for a manifest's ``config``."""
        return {"network": asdict(self.network.config), "state_indices": list(self.state_indices)}

    def tensors(self) -> dict[str, np.ndarray]:
        """The network's state dict as float32 arrays."""
        return {k: v.detach().cpu().numpy() for k, v in self.network.state_dict().items()}

    @classmethod
    def from_tensors(
        cls, config: dict[str, Any], tensors: dict[str, np.ndarray]
    ) -> LearnedDynamics:
        """Rebuilds from :meth:`config_json` and :meth:`tensors` output."""
        network_config = dict(config["network"])
        network_config["hidden"] = tuple(network_config["hidden"])
        network = SkillDynamicsNet(DynamicsNetConfig(**network_config))
        network.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
        return cls(network, tuple(config["state_indices"]))

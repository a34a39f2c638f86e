"""The goal-conditioned Q-network of Actionable Models (Chebotar et al. 2021).

``Q(s, a, g) = sigmoid(f(s, a, g))`` reads as the probability of reaching ``g`` from ``s`` after
taking ``a`` (survey notes, "ACTIONABLE MODELS - SETUP": ``Q^pi(s_t, a_t, g) = P^pi(s_T = g |
s_t, a_t)``). The network sees ``[s, a, g, g - s_xy]`` through a fixed input normalization; the
relative goal makes "go towards g" easy to represent. :class:`NumpyQ` is the same function in
numpy for the control path (no torch per control tick).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from skill_library.networks import Normalizer, mlp


@dataclass(frozen=True)
class QNetworkConfig:
    """Sizes of :class:`GoalQNetwork`."""

    obs_dim: int = 4
    """do: observation size (point mass: [x, y, vx, vy])."""
    action_dim: int = 2
    """da: action size."""
    goal_indices: tuple[int, ...] = (0, 1)
    """Observation entries a goal refers to (dg of them, x-y)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths (ReLU)."""

    @property
    def goal_dim(self) -> int:
        """dg: goal size."""
        return len(self.goal_indices)

    @property
    def feature_dim(self) -> int:
        """Input size: ``do + da + 2 dg`` (``s, a, g, g - s[goal_indices]``)."""
        return self.obs_dim + self.action_dim + 2 * self.goal_dim


class GoalQNetwork(nn.Module):
    """``f(s, a, g)``, the logit of ``Q(s, a, g)``.

    Args:
        config: sizes.
    """

    def __init__(self, config: QNetworkConfig):
        super().__init__()
        self.config = config
        self.normalizer = Normalizer(config.feature_dim)
        self.net = mlp(config.feature_dim, config.hidden, 1, "relu")
        self._goal_index = list(config.goal_indices)

    def features(
        self, obs: torch.Tensor, actions: torch.Tensor, goals: torch.Tensor
    ) -> torch.Tensor:
        """``[s, a, g, g - s_xy]``: ``(..., do), (..., da), (..., dg) -> (..., feature_dim)``."""
        relative = goals - obs[..., self._goal_index]
        return torch.cat([obs, actions, goals, relative], -1)

    def forward(
        self, obs: torch.Tensor, actions: torch.Tensor, goals: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``(...)`` for ``obs (..., do)``, ``actions (..., da)``, ``goals (..., dg)``."""
        x = self.normalizer(self.features(obs, actions, goals))
        return self.net(x).squeeze(-1)


class NumpyQ:
    """:class:`GoalQNetwork` as float32 numpy matrices, for the control and planning paths.

    Args:
        network: the trained network (copied; later changes to it are not seen).
    """

    def __init__(self, network: GoalQNetwork):
        linears = [m for m in network.net if isinstance(m, nn.Linear)]
        state = [
            (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears
        ]
        mean = network.normalizer.mean.detach().numpy()
        std = network.normalizer.std.detach().numpy()
        # Fold the input normalization into the first layer: W' = W / std, b' = b - mean/std W.
        first_w, first_b = state[0]
        state[0] = (first_w / std[:, None], first_b - (mean / std) @ first_w)
        self.layers = [(w.astype(np.float32), b.astype(np.float32)) for w, b in state]
        self.goal_indices = list(network.config.goal_indices)

    def logits(self, obs: np.ndarray, actions: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """``obs (B, do)``, ``actions (B, da)``, ``goals (B, dg)`` -> logits ``(B,)``."""
        obs = np.asarray(obs, np.float32)
        goals = np.asarray(goals, np.float32)
        x = np.concatenate(
            [obs, np.asarray(actions, np.float32), goals, goals - obs[:, self.goal_indices]], -1
        )
        for weight, bias in self.layers[:-1]:
            x = np.maximum(x @ weight + bias, 0.0)
        weight, bias = self.layers[-1]
        return (x @ weight + bias)[:, 0]

    def __call__(self, obs: np.ndarray, actions: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """``Q = sigmoid(logits)``, ``(B,)`` in [0, 1]."""
        return 1.0 / (1.0 + np.exp(-self.logits(obs, actions, goals)))

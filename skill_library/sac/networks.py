"""SAC networks: a tanh-squashed Gaussian policy and twin Q critics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from skill_library.networks import mlp

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class TanhGaussianPolicy(nn.Module):
    """``a = tanh(u)``, ``u ~ N(mu(x), sigma(x))`` (Haarnoja et al. 2018, Appendix C).

    Args:
        input_dim: size of the policy input ``x`` (observation features and command).
        action_dim: da.
        hidden: hidden widths.
    """

    def __init__(self, input_dim: int, action_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.trunk = mlp(input_dim, hidden, None, "relu")
        width = hidden[-1] if hidden else input_dim
        self.mean = nn.Linear(width, action_dim)
        self.log_std = nn.Linear(width, action_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: (B, input_dim)`` -> pre-squash mean and log-std, each ``(B, da)``."""
        features = self.trunk(x)
        return self.mean(features), self.log_std(features).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized sample and its log-probability.

        Returns:
            ``actions (B, da)`` in (-1, 1) and ``log_prob (B,)`` with the tanh correction
            ``log pi(a) = log N(u) - sum log(1 - tanh(u)^2)`` (SAC, Eq. 21).
        """
        mean, log_std = self(x)
        std = log_std.exp()
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        pre = mean + std * noise
        log_prob = (-0.5 * noise**2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), numerically stable.
        log_prob = log_prob - (2 * (np.log(2.0) - pre - nn.functional.softplus(-2 * pre))).sum(-1)
        return torch.tanh(pre), log_prob

    def mode(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic action ``tanh(mu(x))``: ``(B, da)``."""
        return torch.tanh(self(x)[0])


class TwinQ(nn.Module):
    """Two independent Q networks ``Q_1, Q_2 (x, a)`` (clipped double Q, Fujimoto et al. 2018)."""

    def __init__(self, input_dim: int, action_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.q1 = mlp(input_dim + action_dim, hidden, 1, "relu")
        self.q2 = mlp(input_dim + action_dim, hidden, 1, "relu")

    def forward(self, x: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: (B, input_dim)``, ``actions: (B, da)`` -> two ``(B,)`` value estimates."""
        inputs = torch.cat([x, actions], -1)
        return self.q1(inputs).squeeze(-1), self.q2(inputs).squeeze(-1)

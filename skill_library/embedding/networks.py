"""The skill-embedding networks: p(z | task), q(z | window of states), and the SAC pieces.

The policy ``pi(a | s, z)`` is SAC's :class:`~skill_library.sac.networks.TanhGaussianPolicy` over
``[obs, z]``; the critics are SAC's :class:`~skill_library.sac.networks.TwinQ` over
``[obs, z, one_hot(task)]`` (Hausman et al. 2018, Sec. 4: the lower-bound Q-function
``Q(s, a; z, t)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from skill_library.networks import mlp

LOG_STD_MIN = -5.0
"""Lower bound of every Gaussian log-std here (embedding and inference)."""


class TaskEmbedding(nn.Module):
    """The embedding network ``p(z | t) = N(mu_t, diag(sigma_t^2))``, one Gaussian per task.

    With the task given as a one-hot vector (as in the paper) a linear layer is exactly a table
    of per-task parameters, which is what this holds.

    Args:
        tasks: T.
        latent_dim: dz.
        extent: means are ``extent * tanh(raw)``.
        max_std: upper bound of sigma.
        generator: seeds the initial means.
        min_std: lower bound of sigma. A floor keeps every task's p(z | t) a neighbourhood,
            not a point: the policy learns to act on the z around each mean, and tasks whose
            neighbourhoods overlap conflict in the Q-function, which pushes their means apart
            (a collapsed embedding leaves the space between the means untrained).
    """

    def __init__(
        self,
        tasks: int,
        latent_dim: int,
        extent: float = 1.0,
        max_std: float = 0.5,
        generator: torch.Generator | None = None,
        min_std: float = math.exp(LOG_STD_MIN),
    ):
        super().__init__()
        self.extent = float(extent)
        self.max_log_std = math.log(max_std)
        self.min_log_std = max(LOG_STD_MIN, math.log(min_std))
        self.raw_mean = nn.Parameter(0.5 * torch.randn(tasks, latent_dim, generator=generator))
        self.raw_log_std = nn.Parameter(torch.full((tasks, latent_dim), math.log(max_std) - 1.0))

    def distribution(self, tasks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tasks: (B,)`` int64 -> mean and log-std of ``p(z | t)``, each ``(B, dz)``."""
        mean = self.extent * torch.tanh(self.raw_mean[tasks])
        return mean, self.raw_log_std[tasks].clamp(self.min_log_std, self.max_log_std)

    def rsample(
        self, tasks: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Reparameterized ``z = mu_t + sigma_t * eps``, ``eps ~ N(0, I)``: ``(B, dz)``."""
        mean, log_std = self.distribution(tasks)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return mean + log_std.exp() * noise

    def entropy(self, tasks: torch.Tensor) -> torch.Tensor:
        """``H[p(z | t)] = sum_i log sigma_i + dz/2 log(2 pi e)``: ``(B,)`` nats."""
        _, log_std = self.distribution(tasks)
        return log_std.sum(-1) + 0.5 * log_std.shape[-1] * math.log(2 * math.pi * math.e)

    def all_means(self) -> torch.Tensor:
        """``(T, dz)`` every task's embedding mean, with gradients (for terms between tasks)."""
        return self.extent * torch.tanh(self.raw_mean)

    @torch.no_grad()
    def means(self) -> torch.Tensor:
        """``(T, dz)`` the per-task embedding means."""
        return self.distribution(torch.arange(self.raw_mean.shape[0]))[0]

    @torch.no_grad()
    def stds(self) -> torch.Tensor:
        """``(T, dz)`` the per-task embedding stds."""
        return self.distribution(torch.arange(self.raw_mean.shape[0]))[1].exp()


class InferenceNet(nn.Module):
    """The inference network ``q(z | s_{t-H+2..t+1}) = N(m(w), diag(s(w)^2))`` over a window
    ``w`` of H observations (flattened), which the reward asks to identify the skill.

    Args:
        input_dim: ``H * do``.
        latent_dim: dz.
        hidden: hidden widths.
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        self.net = mlp(input_dim, hidden, 2 * latent_dim, "relu")
        self.latent_dim = latent_dim

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``windows: (B, H * do)`` -> mean and log-std of q, each ``(B, dz)``."""
        out = self.net(windows)
        mean, log_std = out[:, : self.latent_dim], out[:, self.latent_dim :]
        return mean, log_std.clamp(LOG_STD_MIN, 2.0)

    def log_prob(self, windows: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``log q(z | window)`` of ``latents: (B, dz)``: ``(B,)`` nats."""
        mean, log_std = self(windows)
        return gaussian_log_prob(latents, mean, log_std)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian log-density summed over the last axis: ``(B, d) -> (B,)``."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

"""SPiRL's skill model (Pertsch et al. 2020, Fig. 2): encoder q(z | a_1..a_H), decoder, and the
state-conditioned skill prior p(z | s_1)."""

from __future__ import annotations

import torch
from torch import nn

from skill_library.networks import mlp
from skill_library.spirl.config import SkillModelConfig

LOG_STD_MIN, LOG_STD_MAX = -6.0, 2.0


class GaussianHead(nn.Module):
    """An MLP whose output is a diagonal Gaussian: ``x (B, n) -> mean, log_std (B, dz)``."""

    def __init__(self, input_dim: int, output_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp(input_dim, hidden, 2 * output_dim, "relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(x).chunk(2, -1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


class SkillModel(nn.Module):
    """Skill VAE plus learned prior.

    Args:
        obs_dim: do.
        action_dim: da.
        config: sizes and the decoder variant.
    """

    def __init__(self, obs_dim: int, action_dim: int, config: SkillModelConfig):
        super().__init__()
        self.config = config
        self.obs_dim, self.action_dim = obs_dim, action_dim
        H, dz = config.horizon, config.latent_dim
        self.encoder = GaussianHead(H * action_dim, dz, config.hidden)
        if config.closed_loop:
            self.decoder = mlp(obs_dim + dz, config.hidden, action_dim, "relu")
        else:
            self.decoder = mlp(dz, config.hidden, H * action_dim, "relu")
        self.prior = GaussianHead(obs_dim, dz, config.hidden)

    def encode(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``actions (B, H, da)`` -> posterior mean and log-std ``(B, dz)``."""
        return self.encoder(actions.flatten(1))

    def decode(self, z: torch.Tensor, states: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstructed actions ``(B, H, da)`` in [-1, 1].

        Args:
            z: ``(B, dz)`` skills.
            states: ``(B, H, do)`` the states each action was taken in (closed loop only).
        """
        H = self.config.horizon
        if self.config.closed_loop:
            if states is None:
                raise ValueError("the closed-loop decoder needs the states of the sequence")
            inputs = torch.cat([states, z.unsqueeze(1).expand(-1, H, -1)], -1)
            return torch.tanh(self.decoder(inputs))
        return torch.tanh(self.decoder(z)).view(len(z), H, self.action_dim)

    def act(self, obs: torch.Tensor, z: torch.Tensor, step: int = 0) -> torch.Tensor:
        """One action ``(B, da)`` of skill ``z (B, dz)`` at step ``step`` of the skill."""
        if self.config.closed_loop:
            return torch.tanh(self.decoder(torch.cat([obs, z], -1)))
        return torch.tanh(self.decoder(z)).view(len(z), self.config.horizon, -1)[:, step]

    def prior_distribution(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``p(z | s)``: mean and log-std ``(B, dz)`` for ``obs (B, do)``."""
        return self.prior(obs)

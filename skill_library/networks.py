"""Network building blocks shared by every learning algorithm in the skill library."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def mlp(
    in_dim: int, hidden: Sequence[int], out_dim: int | None, activation: str = "relu"
) -> nn.Sequential:
    """``Linear -> act`` for every hidden width, then a final ``Linear`` unless ``out_dim`` is
    None (then the trunk ends with an activation)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    width = in_dim
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        width = size
    if out_dim is not None:
        layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class Normalizer(nn.Module):
    """Fixed affine normalization ``(x - mean) / std`` stored as buffers (saved with weights).

    Args:
        dim: feature size.
        min_std: floor on the stored std so constant features do not blow up.
    """

    def __init__(self, dim: int, min_std: float = 1e-3):
        super().__init__()
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("count", torch.zeros(()))

    @torch.no_grad()
    def fit(self, data: torch.Tensor) -> None:
        """Sets mean and std from ``data: (B, dim)``."""
        self.mean.copy_(data.mean(0))
        self.std.copy_(data.std(0).clamp_min(self.min_std))
        self.count.fill_(len(data))

    @torch.no_grad()
    def update(self, data: torch.Tensor) -> None:
        """Merges ``data: (B, dim)`` into running statistics (Chan et al.'s parallel update)."""
        if self.count == 0:
            self.fit(data)
            return
        n, m = self.count, float(len(data))
        batch_mean, batch_var = data.mean(0), data.var(0, unbiased=False)
        delta = batch_mean - self.mean
        total = n + m
        variance = (self.std**2 * n + batch_var * m + delta**2 * n * m / total) / total
        self.mean.add_(delta * m / total)
        self.std.copy_(variance.sqrt().clamp_min(self.min_std))
        self.count.fill_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean


@dataclass(frozen=True)
class DynamicsNetConfig:
    """Architecture of :class:`SkillDynamicsNet`."""

    state_dim: int
    """ds: size of the planning state (e.g. 2 for x-y)."""
    command_dim: int
    """dz: size of the command (latent skill code)."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths."""
    activation: str = "tanh"
    """Hidden activation, ``tanh`` or ``relu``."""
    num_experts: int = 4
    """Mixture components of the output head; 0 = a plain (deterministic mean) head."""
    fixed_variance: bool = False
    """Mixture components with unit variance (in normalized units) instead of learned."""
    residual: bool = True
    """Predict the state change ``s' - s`` (True) or ``s'`` itself."""


class SkillDynamicsNet(nn.Module):
    """Skill dynamics ``q(s' | s, z)`` (DADS, Sharma et al. 2019, Sec. 3): a mixture of Gaussian
    experts over the normalized state change, with input and output normalization.

    The numba rollout kernels run the mixture *mean*; :meth:`export_mlp` packs the weights.
    """

    def __init__(self, config: DynamicsNetConfig):
        super().__init__()
        self.config = config
        ds, dz = config.state_dim, config.command_dim
        self.in_norm = Normalizer(ds + dz)
        self.out_norm = Normalizer(ds)
        self.trunk = mlp(ds + dz, config.hidden, None, config.activation)
        width = config.hidden[-1] if config.hidden else ds + dz
        experts = max(config.num_experts, 1)
        self.means = nn.Linear(width, experts * ds)
        self.logits = nn.Linear(width, experts) if config.num_experts > 0 else None
        learn_std = config.num_experts > 0 and not config.fixed_variance
        self.log_std = nn.Linear(width, experts * ds) if learn_std else None

    def distribution(
        self, states: torch.Tensor, commands: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture parameters in normalized target units.

        Args:
            states: ``(B, ds)``.
            commands: ``(B, dz)``.

        Returns:
            ``logits (B, E)``, ``means (B, E, ds)``, ``log_std (B, E, ds)``.
        """
        ds = self.config.state_dim
        features = self.trunk(self.in_norm(torch.cat([states, commands], -1)))
        means = self.means(features).view(len(states), -1, ds)
        experts = means.shape[1]
        if self.logits is None:
            logits = torch.zeros(len(states), 1, device=means.device, dtype=means.dtype)
        else:
            logits = self.logits(features)
        if self.log_std is None:
            log_std = torch.zeros_like(means)
        else:
            log_std = self.log_std(features).view(len(states), experts, ds).clamp(-5.0, 2.0)
        return logits, means, log_std

    def target(self, states: torch.Tensor, next_states: torch.Tensor) -> torch.Tensor:
        """The normalized regression target for ``s -> s'``: ``(B, ds)``."""
        delta = next_states - states if self.config.residual else next_states
        return self.out_norm(delta)

    def log_prob(
        self, states: torch.Tensor, commands: torch.Tensor, next_states: torch.Tensor
    ) -> torch.Tensor:
        """``log q(s' | s, z)`` in normalized target units (the Jacobian of the normalization is
        a constant that cancels in DADS's reward and does not move the likelihood gradient).

        Returns:
            ``(B,)`` log-densities.
        """
        logits, means, log_std = self.distribution(states, commands)
        target = self.target(states, next_states).unsqueeze(1)  # (B, 1, ds)
        z = (target - means) * torch.exp(-log_std)
        component = (
            -0.5 * (z**2).sum(-1) - log_std.sum(-1) - 0.5 * means.shape[-1] * np.log(2 * np.pi)
        )
        return torch.logsumexp(torch.log_softmax(logits, -1) + component, -1)

    def forward(self, states: torch.Tensor, commands: torch.Tensor) -> torch.Tensor:
        """Mean prediction of the next state: ``(B, ds), (B, dz) -> (B, ds)``."""
        logits, means, _ = self.distribution(states, commands)
        mixed = (torch.softmax(logits, -1).unsqueeze(-1) * means).sum(1)
        delta = self.out_norm.inverse(mixed)
        return states + delta if self.config.residual else delta

    @torch.no_grad()
    def export_mlp(self) -> dict[str, Any]:
        """Weights as plain float32 arrays in the layout of ``kernels.make_mlp_weights``."""

        def f32(tensor: torch.Tensor) -> np.ndarray:
            return tensor.detach().cpu().numpy().astype(np.float32)

        linears = [m for m in self.trunk if isinstance(m, nn.Linear)]
        if self.logits is None:
            out_weight, out_bias = f32(self.means.weight.T), f32(self.means.bias)
            head, components = "mean", 1
        else:
            # Logits first, then component means (component-major), as the kernel reads them.
            out_weight = np.concatenate([f32(self.logits.weight.T), f32(self.means.weight.T)], 1)
            out_bias = np.concatenate([f32(self.logits.bias), f32(self.means.bias)])
            head, components = "mog", self.config.num_experts
        return {
            "hidden_weights": [f32(m.weight.T) for m in linears],
            "hidden_biases": [f32(m.bias) for m in linears],
            "out_weight": np.ascontiguousarray(out_weight),
            "out_bias": out_bias,
            "in_mean": f32(self.in_norm.mean),
            "in_std": f32(self.in_norm.std),
            "out_mean": f32(self.out_norm.mean),
            "out_std": f32(self.out_norm.std),
            "activation": self.config.activation,
            "head": head,
            "n_components": components,
            "residual": self.config.residual,
        }

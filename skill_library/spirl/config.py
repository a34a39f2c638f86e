"""SPiRL settings (torch-free: the ``hrl`` command line reads its defaults from here)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hrl_runtime.errors import ConfigError

MAX_HORIZON = 1000
"""Longest skill (actions per skill H)."""
MAX_LATENT_DIM = 1024
"""Largest skill embedding dz."""


def _refuse_first(owner: str, checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{owner}: {message}")


def _finite(value: float, low: float, low_open: bool = False) -> bool:
    return math.isfinite(value) and (value > low if low_open else value >= low)


@dataclass(frozen=True)
class SkillModelConfig:
    """Sizes of the skill model."""

    horizon: int = 10
    """H: actions per skill."""
    latent_dim: int = 10
    """dz: size of the skill embedding."""
    hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of encoder, decoder and prior."""
    closed_loop: bool = True
    """Decoder pi(a_t | s_t, z) (closed loop, SPiRL's default) instead of p(a_1..a_H | z)."""


@dataclass(frozen=True)
class SkillTrainingConfig:
    """Training of the skill model."""

    model: SkillModelConfig = field(default_factory=SkillModelConfig)
    """Architecture (H, dz, widths, decoder variant)."""
    beta: float = 5e-4
    """Weight of KL(q(z|a) || N(0, I)) (SPiRL uses 5e-4 for navigation)."""
    updates: int = 6000
    """Gradient steps."""
    batch_size: int = 256
    """Sequences per step."""
    learning_rate: float = 1e-3
    """Adam step size."""
    validation_fraction: float = 0.05
    """Share of episodes held out to report validation losses."""
    command_bound: float = 2.0
    """The packaged skill's commands are z in [-bound, bound]^dz."""
    seed: int = 0
    """Seed of the split, the batches and the initialization."""
    checkpoint_every: int = 1000
    """Updates between checkpoints."""

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field (before any data is read)."""
        model = self.model
        _refuse_first(
            "SkillTrainingConfig",
            [
                (1 <= model.horizon <= MAX_HORIZON, f"horizon must be in 1..{MAX_HORIZON}"),
                (
                    1 <= model.latent_dim <= MAX_LATENT_DIM,
                    f"latent_dim must be in 1..{MAX_LATENT_DIM}",
                ),
                (all(w >= 1 for w in model.hidden), "hidden widths must be >= 1"),
                (_finite(self.beta, 0.0), f"beta must be finite and >= 0, got {self.beta}"),
                (self.updates >= 1, "updates must be >= 1"),
                (self.batch_size >= 1, "batch_size must be >= 1"),
                (_finite(self.learning_rate, 0.0, True), "learning_rate must be finite, > 0"),
                (0.0 <= self.validation_fraction < 1.0, "validation_fraction must be in [0, 1)"),
                (_finite(self.command_bound, 0.0, True), "command_bound must be finite, > 0"),
                (self.checkpoint_every >= 1, "checkpoint_every must be >= 1"),
            ],
        )


@dataclass(frozen=True)
class SPiRLConfig:
    """Downstream training in skill space (or flat, for the baseline)."""

    env_steps: int = 300_000
    """Budget in control steps of the environment (the same for every method)."""
    method: str = "spirl"
    """``spirl`` (KL to the learned prior), ``skill_sac`` (entropy, no prior), ``flat_sac``."""
    target_divergence: float = 5.0
    """delta: target of KL(pi || p) (spirl)."""
    target_entropy: float | None = None
    """skill_sac / flat_sac: target entropy; None: -dim."""
    hidden: tuple[int, ...] = (256, 256)
    """Policy and critic widths."""
    learning_rate: float = 3e-4
    """Adam step size."""
    discount: float = 0.99
    """gamma, per high-level step."""
    tau: float = 0.005
    """Target critic Polyak factor."""
    initial_alpha: float = 0.1
    """Initial temperature."""
    batch_size: int = 256
    """Minibatch size."""
    warmup: int = 256
    """High-level steps before the first update (actions from the prior / random)."""
    updates_per_step: int = 1
    """Gradient steps per high-level step."""
    flat_action_repeat: int = 10
    """flat_sac: control steps per raw action (the skills' own policy rate)."""
    eval_every: int = 20_000
    """Control steps between evaluations for the learning curve."""
    eval_episodes: int = 5
    """Episodes per evaluation."""
    seed: int = 0
    """Seed of everything."""

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        _refuse_first(
            "SPiRLConfig",
            [
                (self.env_steps >= 1, "env_steps must be >= 1"),
                (
                    self.method in ("spirl", "skill_sac", "flat_sac"),
                    "method must be spirl, skill_sac or flat_sac",
                ),
                (_finite(self.target_divergence, 0.0, True), "target_divergence must be > 0"),
                (_finite(self.learning_rate, 0.0, True), "learning_rate must be finite, > 0"),
                (0.0 <= self.discount <= 1.0, "discount must be in [0, 1]"),
                (0.0 < self.tau <= 1.0, "tau must be in (0, 1]"),
                (_finite(self.initial_alpha, 0.0, True), "initial_alpha must be finite, > 0"),
                (self.batch_size >= 1, "batch_size must be >= 1"),
                (self.warmup >= 0, "warmup must be >= 0"),
                (self.updates_per_step >= 1, "updates_per_step must be >= 1"),
                (self.flat_action_repeat >= 1, "flat_action_repeat must be >= 1"),
                (self.eval_every >= 1, "eval_every must be >= 1"),
                (self.eval_episodes >= 1, "eval_episodes must be >= 1"),
            ],
        )

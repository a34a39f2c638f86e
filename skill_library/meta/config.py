"""Configuration of MAML meta-training and of online adaptation of skill dynamics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hrl_runtime.errors import ConfigError
from skill_library.planner_settings import check_mppi_settings


@dataclass(frozen=True)
class AdaptationConfig:
    """How skill dynamics adapt online (GrBAL, Nagabandi et al. 2019, Alg. 2): at every
    replanning, ``inner_steps`` gradient steps from the meta-parameters on the last ``context``
    observed skill transitions. Stored in a meta-trained package's manifest."""

    context: int = 16
    """M: the last M skill transitions (each ``hold_steps`` control steps) adapted on."""
    inner_steps: int = 1
    """Gradient steps per adaptation (MAML's inner loop)."""
    inner_lr: float = 0.1
    """alpha, the inner learning rate (of the normalized squared one-step error)."""
    accumulate: bool = False
    """Start each adaptation from the last adapted parameters instead of the meta-parameters
    (online only; meta-training always adapts from the meta-parameters). The parameters go
    back to the meta-parameters at every episode (:meth:`OnlineAdapter.reset`)."""
    backtracking: int = 2
    """Halvings of the step when it raises the loss on the context it was computed from (then,
    if it still does, the step is dropped); 0: GrBAL's plain step, whatever it does."""
    min_context: int = 4
    """Fewest transitions an adaptation needs; before that the planner uses the
    meta-parameters."""

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        checks = [
            (1 <= self.context <= 1024, "context (M) must be in 1..1024"),
            (1 <= self.inner_steps <= 100, "inner_steps must be in 1..100"),
            (0.0 < self.inner_lr < 100.0, "inner_lr must be in (0, 100)"),
            (1 <= self.min_context <= self.context, "min_context must be in 1..context"),
            (0 <= self.backtracking <= 10, "backtracking must be in 0..10"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"AdaptationConfig: {message}")


@dataclass(frozen=True)
class MetaConfig:
    """``hrl train adapt``: MAML over a skill's dynamics on perturbed bodies."""

    skill: str = "dads-pointmass"
    """The skill (registry name or directory) whose policy collects data and is repackaged."""
    env_id: str = "hrl/PointArena-v0"
    """Environment whose bodies are perturbed."""
    steps: int = 3000
    """Outer (meta) updates."""
    bodies: int = 400
    """Perturbed bodies (tasks) collected, one episode each, from the training distribution."""
    transitions_per_body: int = 48
    """Skill transitions (``hold_steps`` control steps each) collected per body."""
    meta_batch: int = 16
    """Bodies per outer update."""
    query: int = 16
    """K: transitions after the context that the adapted model is scored on (GrBAL)."""
    command_jitter: float = 0.05
    """Std of the per-control-step noise on the held command (a replanning loop moves its
    command a little at every tick)."""
    state_indices: tuple[int, ...] | None = None
    """Observation entries of the meta-learned dynamics' planning state; None: every entry
    (for the point mass x, y and the velocity, which the next x-y depends on as much as on
    the command)."""
    persistence: float = 0.5
    """Probability that a collected hold keeps the previous hold's command (plans are smooth)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the meta-learned dynamics (tanh, plain mean head)."""
    outer_lr: float = 1e-3
    """beta, Adam learning rate of the meta-parameters (GrBAL: 1e-3)."""
    first_order: bool = False
    """First-order MAML (no second derivatives through the inner step)."""
    adaptation: AdaptationConfig = AdaptationConfig()
    """M, inner steps and inner learning rate, used in training and written to the manifest."""
    mppi: dict[str, Any] = field(default_factory=dict)
    """Latent MPPI settings the package recommends (``planner_settings.MPPI_SETTINGS``; written
    to the manifest, not used in training); empty: the planner's defaults."""
    seed: int = 0
    """Seed of the bodies, the data and the initialization."""
    checkpoint_every: int = 500
    """Outer updates between checkpoints."""
    log_every: int = 50
    """Outer updates between logged metrics."""

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        self.adaptation.validate()
        check_mppi_settings(self.mppi)
        need = self.adaptation.context + self.query
        checks = [
            (self.steps >= 1, "steps must be >= 1"),
            (self.bodies >= 2, "bodies must be >= 2"),
            (
                self.transitions_per_body >= need,
                f"transitions_per_body must be >= context + query = {need}",
            ),
            (1 <= self.meta_batch <= self.bodies, "meta_batch must be in 1..bodies"),
            (self.query >= 1, "query must be >= 1"),
            (self.command_jitter >= 0, "command_jitter must be >= 0"),
            (0 <= self.persistence <= 1, "persistence must be in [0, 1]"),
            (len(self.hidden) >= 1 and min(self.hidden) >= 1, "hidden needs widths >= 1"),
            (0 < self.outer_lr < 1, "outer_lr must be in (0, 1)"),
            (self.checkpoint_every >= 1 and self.log_every >= 1, "intervals must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"MetaConfig: {message}")

"""SAC hyperparameters (torch-free: command lines read the defaults without importing torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SACConfig:
    """SAC hyperparameters."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the policy and the critics."""
    learning_rate: float = 3e-4
    """Adam step size of every network and of the temperature."""
    discount: float = 0.99
    """gamma."""
    tau: float = 0.005
    """Polyak factor of the target critics."""
    initial_alpha: float = 0.1
    """Initial entropy temperature."""
    target_entropy: float | None = None
    """Target policy entropy; None: -da (SAC's heuristic)."""
    learn_alpha: bool = True
    """Tune alpha toward the target entropy (else keep it fixed)."""

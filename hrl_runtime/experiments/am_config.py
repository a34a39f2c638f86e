"""Configuration of the Actionable-Models comparison (``hrl compare am``): what the far-goal
evaluation runs and which value diagnostics it measures. Plain dataclasses, so the CLI takes its
flags' defaults from here without loading the planners."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ValueCheckConfig:
    """Configuration of :func:`value_diagnostics`."""

    near_pairs: int = 100
    """Start-goal pairs ``near_distance`` apart with a wall in between, and as many in sight."""
    near_distance: tuple[float, float] = (1.5, 3.0)
    """Metres, the straight-line range of the near pairs."""
    far_pairs: int = 200
    """Start-goal pairs ``far_distance`` apart."""
    far_distance: tuple[float, float] = (6.0, 20.0)
    """Metres, the straight-line range of the far pairs."""
    clearance: float = 0.2
    """A straight segment is in sight when it stays this far from every wall (the body's
    radius), metres; starts and goals are ``clearance + 0.1`` from walls."""
    seed: int = 0
    """Seed of the pairs (every skill sees the same ones)."""


@dataclass(frozen=True)
class EvalConfig:
    """Configuration of :func:`run_variants`."""

    env_id: str = "hrl/PointMaze-v0"
    """A point-mass maze id (the env must have a ``layout``)."""
    goals_per_seed: int = 10
    """Episodes (one far goal each) per seed."""
    min_cells: int = 15
    """A far goal is at least this many 4-connected cells from the start (BFS)."""
    max_steps: int = 2000
    """Control steps per episode (``hrl/PointMaze-v0``'s episode length, 20 s)."""
    success_radius: float = 0.5
    """Reached within this distance, metres."""
    wall_margin: float = 0.3
    """Clearance of starts and goals from walls, metres."""
    planners: tuple[str, ...] = ("chaining", "sequence")
    """High levels to run with each variant (``planners.PLANNERS`` names)."""
    value_check: ValueCheckConfig | None = field(default_factory=ValueCheckConfig)
    """Also measure each package's :func:`value_diagnostics` (None: skip)."""

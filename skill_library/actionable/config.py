"""Actionable Models settings (torch-free: ``hrl train am`` reads its defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PolicyConfig:
    """How the skill turns Q into actions."""

    action_repeat: int = 10
    """Control steps each chosen action is held (the data's policy rate)."""
    cem_samples: int = 64
    """K: actions scored per CEM iteration."""
    cem_iterations: int = 3
    """CEM iterations; the first samples uniformly over the action box."""
    cem_elites: int = 6
    """Elites refitted per iteration."""
    cem_min_std: float = 0.05
    """Floor on the CEM std, action units."""
    seed: int = 0
    """Seed of the CEM samples (reset by ``reset()``)."""


@dataclass(frozen=True)
class ActionableConfig:
    """Training of an Actionable Models skill."""

    hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the Q-network (128 keeps the CEM and the planner cheap on a CPU)."""
    steps: int = 30_000
    """Gradient steps."""
    batch_size: int = 256
    """Transitions per step."""
    learning_rate: float = 1e-3
    """Adam step size."""
    discount: float = 0.96
    """gamma per policy step (one data step = ``action_repeat`` control steps). Lower than the
    usual 0.99: the TD fixed point is reached in fewer target updates (errors shrink by gamma
    per update), and V still ranks goals 100 steps away (``0.96^100 ~ 0.02``, in logit space)."""
    target_tau: float = 0.02
    """Polyak rate of the target network per step."""
    success_radius: float = 0.5
    """A goal counts as reached within this distance, metres (the reward of relabelling)."""
    chaining: bool = True
    """Goal chaining: relabel part of each batch with goals from other trajectories."""
    chaining_fraction: float = 0.5
    """Share of the batch with chaining goals (when ``chaining``)."""
    near_goal_fraction: float = 0.5
    """Share of the chaining goals drawn near ``s_t``: the x-y of the dataset state nearest to
    a uniform point within ``near_goal_radius``. Goals drawn from the whole dataset rarely fall
    just behind a wall, and without such pairs Q rates them by ``|g - s|`` alone."""
    near_goal_radius: float = 4.0
    """Metres; see ``near_goal_fraction``."""
    monte_carlo_bound: bool = True
    """Hindsight targets never below ``gamma^(k-1)`` when the data reaches the goal in k steps
    (not in the paper: a valid lower bound that speeds up propagation along trajectories)."""
    negatives: bool = True
    """Conservative artificial negatives."""
    num_negatives: int = 8
    """M: unseen actions per transition."""
    negative_min_distance: float = 0.5
    """Unseen actions are at least this far (Euclidean, action units) from the data action."""
    negative_weight: float = 1.0
    """Weight of the conservative term."""
    target_neighbors: int = 8
    """Actions of this many dataset states nearest to ``s'`` are the candidates of
    ``max_a' Q_target(s', a', g)`` (with the data's next action)."""
    neighbor_velocity_scale: float = 0.3
    """Seconds: velocity differences count like position differences of ``scale * dv`` metres
    in the nearest-state search."""
    target_actions: int = 0
    """N: extra uniform action samples for ``max_a'`` (outside the data's support; 0 = none)."""
    num_subgoals: int = 160
    """Dataset observations shipped in the package as subgoal candidates (farthest-point)."""
    subgoal_link_radius: float = 0.35
    """Metres: a trajectory passing within this of subgoal i and later of subgoal j may link
    i -> j (:func:`~skill_library.actionable.train.subgoal_links`)."""
    subgoal_link_tube: float = 0.3
    """Metres: ... if every state it visits in between lies within this of the segment i -> j
    (a straight, wall-free run; the body's radius is 0.2 m)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """CEM settings of the packaged skill (``action_repeat`` is taken from the dataset)."""
    seed: int = 0
    """Seed of batches, initialization and subgoal selection."""
    checkpoint_every: int = 2000
    """Steps between checkpoints."""

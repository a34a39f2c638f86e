"""Value diagnostics of goal-conditioned skills in a maze: does ``V(s, g)`` know the walls?

Measured on start-goal pairs sampled in the maze and scored against the maze's shortest corridor
paths; :mod:`hrl_runtime.experiments.am_eval` reports them beside the far-goal success rates.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from hrl_runtime.experiments.am_config import ValueCheckConfig


def _in_sight(layout: Any, a: np.ndarray, b: np.ndarray, clearance: float) -> bool:
    points = a + np.linspace(0.0, 1.0, 40)[:, None] * (b - a)
    return bool(layout.free_mask(points, clearance).all())


def first_leg(layout: Any, start: np.ndarray, goal: np.ndarray, clearance: float):
    """The farthest waypoint of the shortest corridor path in sight of ``start``, and the
    path's length (metres).

    Args:
        layout: the maze (``envs.MazeLayout``).
        start: ``(2,)`` x-y, metres.
        goal: ``(2,)`` x-y, metres.
        clearance: a straight segment is in sight when it stays this far from every wall, metres.

    Returns:
        ``(waypoint (2,), path length)``, metres.
    """
    path = [start, *np.asarray(layout.shortest_path(start, goal))]
    length = float(sum(np.linalg.norm(q - p) for p, q in itertools.pairwise(path)))
    leg = next((p for p in reversed(path[1:]) if _in_sight(layout, start, p, clearance)), path[1])
    return np.asarray(leg), length


def value_diagnostics(skill: Any, layout: Any, config: ValueCheckConfig) -> dict[str, float]:
    """How well a goal-conditioned Q knows the walls of a maze, from its shortest paths.

    For near pairs (a few metres apart), ``value_auc`` is the probability that a pair in sight
    gets a higher ``V(s, g) = max_a Q(s, a, g)`` than a pair with a wall in between (0.5: walls
    unseen). For pairs with a wall in between and for far pairs, ``*_heads_along_path`` is the
    share of greedy actions ``argmax_a Q`` (from rest) within 60 degrees of the first straight
    leg of the shortest path (a policy blind to walls heads straight for the goal instead).
    ``far_value_path_corr`` is the correlation of ``log V`` with the path length over far pairs
    (-1: V falls with the distance actually to be travelled).

    Args:
        skill: a goal-commanded skill with ``value`` and ``greedy_action(obs, goal, rng)``.
        layout: the maze (``envs.MazeLayout``).
        config: which pairs.

    Returns:
        ``value_auc``, ``blocked_heads_along_path``, ``far_heads_along_path``,
        ``far_value_path_corr``, and the pair counts.
    """
    from planners.chaining import value_action_set

    rng = np.random.default_rng(config.seed)
    actions = value_action_set(skill.action_space)
    obs_dim = skill.observation_space.shape[0]

    def pairs(count: int, bounds: tuple[float, float]) -> list[tuple[np.ndarray, np.ndarray]]:
        found = []
        while len(found) < count:
            a, b = layout.sample_free(rng, 2, margin=config.clearance + 0.1)
            if bounds[0] <= np.linalg.norm(b - a) <= bounds[1]:
                found.append((a, b))
        return found

    def observation(xy: np.ndarray) -> np.ndarray:
        obs = np.zeros(obs_dim, np.float32)
        obs[:2] = xy
        return obs

    def value(a: np.ndarray, b: np.ndarray) -> float:
        obs = np.tile(observation(a), (len(actions), 1))
        goals = np.tile(b.astype(np.float32), (len(actions), 1))
        return float(skill.value.value(obs, actions, goals).max())

    def heads_along(a: np.ndarray, b: np.ndarray, leg: np.ndarray) -> bool:
        action = skill.greedy_action(observation(a), b.astype(np.float32), np.random.default_rng(0))
        direction = leg - a
        norm = np.linalg.norm(action[:2]) * np.linalg.norm(direction)
        return bool(norm > 0 and action[:2] @ direction / norm > 0.5)

    in_sight, blocked, blocked_heads = [], [], []
    while min(len(in_sight), len(blocked)) < config.near_pairs:
        ((a, b),) = pairs(1, config.near_distance)
        if _in_sight(layout, a, b, config.clearance):
            if len(in_sight) < config.near_pairs:
                in_sight.append(value(a, b))
        elif len(blocked) < config.near_pairs:
            blocked.append(value(a, b))
            blocked_heads.append(heads_along(a, b, first_leg(layout, a, b, config.clearance)[0]))
    far_heads, log_values, lengths = [], [], []
    for a, b in pairs(config.far_pairs, config.far_distance):
        leg, length = first_leg(layout, a, b, config.clearance)
        far_heads.append(heads_along(a, b, leg))
        log_values.append(np.log(max(value(a, b), 1e-9)))
        lengths.append(length)
    seen, walled = np.asarray(in_sight), np.asarray(blocked)
    auc = float(np.mean(seen[:, None] > walled[None])) if len(seen) and len(walled) else np.nan
    return {
        "value_auc": auc,
        "blocked_heads_along_path": float(np.mean(blocked_heads)) if blocked_heads else np.nan,
        "far_heads_along_path": float(np.mean(far_heads)),
        "far_value_path_corr": float(np.corrcoef(log_values, lengths)[0, 1]),
        "near_pairs_in_sight": len(seen),
        "near_pairs_blocked": len(walled),
    }


VALUE_COLUMNS = {
    "value_auc": "V ranks in sight over walled (AUC)",
    "blocked_heads_along_path": "greedy heads along the path, wall in between",
    "far_heads_along_path": "greedy heads along the path, far goals",
    "far_value_path_corr": "corr(log V, path length), far goals",
}
"""Headers of :func:`value_table`."""


def value_table(report: dict[str, Any]) -> list[str]:
    """The value diagnostics as Markdown lines: one row per variant (mean over packages)."""
    per_variant = report.get("value_diagnostics", {}).get("per_variant", {})
    if not per_variant:
        return []
    lines = [
        "| variant | " + " | ".join(VALUE_COLUMNS.values()) + " |",
        "|---|" + "---:|" * len(VALUE_COLUMNS),
    ]
    for label, values in per_variant.items():
        lines.append(f"| {label} | " + " | ".join(f"{values[k]:.2f}" for k in VALUE_COLUMNS) + " |")
    return lines

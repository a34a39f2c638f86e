"""How distinct DADS skills are: a grid of z run from one start, and its picture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skill_library.dads.config import DADSConfig
from skill_library.dads.skill import DADSSkill


def skill_grid(latent_dim: int, per_axis: int = 5, seed: int = 0) -> np.ndarray:
    """A grid of skills ``(N, dz)``: a ``per_axis``-square grid in the first two dimensions
    (others zero), or a single axis when dz = 1."""
    axis = np.linspace(-1.0, 1.0, per_axis, dtype=np.float32)
    if latent_dim == 1:
        return axis[:, None]
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    return np.concatenate([grid, np.zeros((len(grid), latent_dim - 2), np.float32)], -1)


SIGNAL_WINDOW = 16_384
"""Most recent transitions :func:`skill_signal` fits."""


def skill_signal(
    window_start: np.ndarray, window_end: np.ndarray, skills: np.ndarray, full: np.ndarray
) -> float:
    """How much of the skill-dynamics target z explains: R^2 of a quadratic least-squares fit
    of the window change ``window_end - window_start (N, ds)`` on ``z (N, dz)``, averaged over
    the ds entries (whole windows only).

    A training-time gauge of whether skills are emerging, independent of the learned skill
    dynamics: near 0 when the policy ignores z, near 1 when z determines where the window ends
    (the point-mass skills start at ~0.8). Needs no network, so it cannot be fooled by a
    dynamics model that has not caught up.

    Returns:
        R^2 in [0, 1], or NaN with fewer whole windows than features + 2.
    """
    mask = full > 0
    change = (window_end - window_start)[mask].astype(np.float64)
    z = skills[mask].astype(np.float64)
    pairs = [z[:, i] * z[:, j] for i in range(z.shape[1]) for j in range(i, z.shape[1])]
    features = np.column_stack([np.ones(len(z)), z, *pairs]) if len(z) else np.zeros((0, 1))
    if len(change) < features.shape[1] + 2:
        return float("nan")
    coef, *_ = np.linalg.lstsq(features, change, rcond=None)
    residual = (change - features @ coef).var(0)
    total = change.var(0)
    return float(np.mean(1.0 - residual / np.maximum(total, 1e-12)))


def evaluate_skills(skill: DADSSkill, config: DADSConfig, seed: int = 0) -> dict[str, Any]:
    """Runs each z of a grid from the same start (deterministic policy, twice with different
    reset noise); measures how different the end states of different z are.

    Returns:
        ``trajectories (N, 2, steps + 1, do)``, ``end_spread`` (RMS distance of end states from
        their mean over z), ``repeat_spread`` (RMS distance between the two repeats of each z),
        their ratio ``skill_distinctness``, and ``grid_fall_rate`` (fraction of the runs that
        terminated, e.g. Ant falling).
    """
    import envs

    grid = skill_grid(config.latent_dim)
    env = envs.make_env(
        config.env_id, max_episode_steps=config.episode_length * config.action_repeat + 1
    )
    trajectories = np.zeros(
        (len(grid), 2, config.episode_length + 1, env.observation_space.shape[0])
    )
    fell = np.zeros((len(grid), 2), bool)
    for index, z in enumerate(grid):
        for repeat in range(2):
            trajectories[index, repeat], fell[index, repeat] = _rollout(
                env, skill, z, config.episode_length, config.action_repeat, seed + repeat
            )
    dims = list(config.dynamics_dims or range(trajectories.shape[-1]))
    ends = trajectories[:, :, -1][..., dims]
    end_spread = float(np.sqrt(((ends[:, 0] - ends[:, 0].mean(0)) ** 2).sum(-1).mean()))
    repeat_spread = float(np.sqrt(((ends[:, 0] - ends[:, 1]) ** 2).sum(-1).mean()))
    return {
        "trajectories": trajectories,
        "end_spread": end_spread,
        "repeat_spread": repeat_spread,
        "skill_distinctness": end_spread / max(repeat_spread, 1e-6),
        "grid_fall_rate": float(fell.mean()),
    }


def _rollout(
    env: Any, skill: DADSSkill, z: np.ndarray, steps: int, action_repeat: int, seed: int
) -> tuple:
    """Observations ``(steps + 1, do)`` after each of ``steps`` policy steps (``action_repeat``
    control steps each) of skill ``z`` from a reset with ``seed`` (held at the last one once
    the episode terminates) and whether it terminated (a fall, on Ant)."""
    obs, _ = env.reset(seed=seed)
    skill.reset()
    path = np.zeros((steps + 1, env.observation_space.shape[0]))
    path[0] = obs
    for step in range(steps):
        for _ in range(action_repeat):
            obs, _, terminated, truncated, _ = env.step(skill.act(obs, z))
            if terminated or truncated:
                break
        path[step + 1] = obs
        if terminated:
            path[step + 1 :] = obs
            return path, True
    return path, False


def plot_skill_grid(trajectories: np.ndarray, path: Path, config: DADSConfig) -> Path:
    """PNG of the x-y paths of the grid of z (first repeat), coloured by z."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = list(config.dynamics_dims or (0, 1))[:2]
    grid = skill_grid(config.latent_dim)
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=110)
    angle = np.arctan2(grid[:, -1], grid[:, 0]) if grid.shape[1] > 1 else grid[:, 0]
    colors = plt.cm.hsv((angle - angle.min()) / max(np.ptp(angle), 1e-6))
    for index in range(len(grid)):
        path_xy = trajectories[index, 0][:, dims]
        ax.plot(path_xy[:, 0], path_xy[:, 1], color=colors[index], lw=1.2)
        ax.plot(*path_xy[-1], "o", color=colors[index], ms=3)
    ax.plot(*trajectories[0, 0, 0][dims], "ks", ms=6)
    ax.set_aspect("equal")
    ax.set_title(f"DADS skills on {config.env_id}: a {len(grid)}-skill grid of z", fontsize=9)
    ax.set_xlabel(f"obs[{dims[0]}]")
    ax.set_ylabel(f"obs[{dims[1]}]")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

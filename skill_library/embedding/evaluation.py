"""How well the embedded skills do their tasks, and a picture of the embedding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skill_library.embedding.skill import EmbeddingSkill

EVAL_STEPS = 150
"""Control steps (3 s on the arm) each task is run for in the evaluation."""
SUCCESS_RADIUS = 0.1
"""Final fingertip distance counted as doing a task, metres."""


def rollout(
    env: Any, skill: EmbeddingSkill, z: np.ndarray, steps: int, seed: int, task: int = 0
) -> np.ndarray:
    """Observations ``(steps + 1, do)`` of holding command ``z`` from a reset with ``seed``.

    Args:
        env: a multi-task env made by ``envs.make_env`` (``options={"task": k}`` at reset).
        skill: the embedded skill.
        z: ``(dz,)`` command.
        steps: control steps.
        seed: reset seed.
        task: the task id given at reset (it only sets the env's reward).
    """
    obs, _ = env.reset(seed=seed, options={"task": int(task)})
    path = np.zeros((steps + 1, env.observation_space.shape[0]))
    path[0] = obs
    for step in range(steps):
        obs, *_ = env.step(skill.act(obs, z))
        path[step + 1] = obs
    return path


def evaluate_tasks(skill: EmbeddingSkill, env_id: str, seed: int = 0) -> dict[str, Any]:
    """Runs every training task with its embedding mean from the home pose.

    Returns:
        ``task_success_rate`` (final fingertip within :data:`SUCCESS_RADIUS` of the target),
        ``task_final_distance_mean`` (metres), ``task_final_distances`` (per task) and
        ``paths`` ``(T, EVAL_STEPS + 1, do)``.
    """
    import envs

    env = envs.make_env(env_id, max_episode_steps=EVAL_STEPS + 1)
    try:
        targets = np.asarray(env.unwrapped.targets)[: skill.config.tasks]
        paths, distances = [], []
        for task in range(skill.config.tasks):
            path = rollout(env, skill, skill.task_command(task), EVAL_STEPS, seed + task, task)
            paths.append(path)
            distances.append(float(np.linalg.norm(path[-1, :2] - targets[task])))
    finally:
        env.close()
    distances_array = np.array(distances)
    return {
        "task_success_rate": float((distances_array <= SUCCESS_RADIUS).mean()),
        "task_final_distance_mean": float(distances_array.mean()),
        "task_final_distances": [round(d, 4) for d in distances],
        "paths": np.stack(paths),
    }


def interpolation_paths(
    skill: EmbeddingSkill, env_id: str, steps: int = EVAL_STEPS, per_pair: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Fingertip paths of z interpolated between the embeddings of neighbouring tasks
    ``k`` and ``k + 1`` (cyclically), ``per_pair`` points per pair, ends excluded.

    Returns:
        ``commands (P, dz)`` and ``paths (P, steps + 1, 2)``.
    """
    import envs

    means = skill.embedding_means
    tasks = len(means)
    weights = np.linspace(0, 1, per_pair + 2)[1:-1]
    commands = np.array(
        [(1 - w) * means[k] + w * means[(k + 1) % tasks] for k in range(tasks) for w in weights]
    )
    env = envs.make_env(env_id, max_episode_steps=steps + 1)
    try:
        paths = np.stack(
            [rollout(env, skill, z, steps, seed)[:, :2] for z in commands.astype(np.float32)]
        )
    finally:
        env.close()
    return commands, paths


def plot_embedding(skill: EmbeddingSkill, env_id: str, path: Path | str, seed: int = 0) -> Path:
    """PNG: left, the task embeddings (means, 1-std ellipses) and the interpolated z; right,
    the fingertip paths of the tasks' means (solid) and of the interpolated z (thin)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    import envs

    evaluation = evaluate_tasks(skill, env_id, seed)
    commands, interpolated = interpolation_paths(skill, env_id, seed=seed)
    env = envs.make_env(env_id)
    targets = np.asarray(env.unwrapped.targets)[: skill.config.tasks]
    env.close()
    tasks = skill.config.tasks
    colors = plt.cm.tab20(np.arange(tasks) % 20)
    per_pair = len(commands) // tasks
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5.2), dpi=100)
    means, stds = skill.embedding_means, skill.embedding_stds
    for task in range(tasks):
        left.add_patch(
            Ellipse(
                means[task, :2],
                2 * stds[task, 0],
                2 * stds[task, min(1, means.shape[1] - 1)],
                color=colors[task],
                alpha=0.25,
            )
        )
        left.plot(*means[task, :2], "o", color=colors[task], ms=8)
        left.annotate(str(task), means[task, :2], xytext=(5, 5), textcoords="offset points")
        right.plot(*evaluation["paths"][task][:, :2].T, color=colors[task], lw=2)
        right.plot(*targets[task], "*", color=colors[task], ms=14, mec="k")
    for index, z in enumerate(commands):
        color = colors[index // per_pair]
        left.plot(*z[:2], ".", color=color, ms=5)
        right.plot(*interpolated[index].T, color=color, lw=0.8, ls="--")
        right.plot(*interpolated[index][-1], ".", color=color, ms=6)
    bound = skill.config.command_bound
    left.set(xlim=(-bound, bound), ylim=(-bound, bound), xlabel="z[0]", ylabel="z[1]")
    left.set_title(
        "task embeddings p(z | t): means (numbered), 1-std ellipses;\n"
        "small dots: z interpolated between neighbouring tasks",
        fontsize=9,
    )
    right.plot(*evaluation["paths"][0][0, :2], "ks", ms=7)
    right.set(xlim=(-1.25, 1.25), ylim=(-1.25, 1.25), xlabel="x (m)", ylabel="y (m)")
    right.set_title(
        f"fingertip paths from home (square), {EVAL_STEPS} steps: task means (solid;\n"
        "stars: the targets) and interpolated z (dashed, coloured as the first task)",
        fontsize=9,
    )
    for axis in (left, right):
        axis.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)

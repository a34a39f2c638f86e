"""Far-goal evaluation of Actionable Models variants: which skill, which high level, which seed.

Each episode starts at a random free point and has one goal at least ``min_cells`` BFS cells
away (in a maze whose training trajectories each cover only a few cells, such goals need
stitching). Every (variant, planner, seed) runs the same episodes; the result is a CSV, a JSON
summary and a Markdown table of success rates.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.agent import HierarchicalAgent
from hrl_runtime.loop import ControlLoop, LoopConfig
from planners.factory import build_goal_follower
from planners.sequence import SequenceConfig


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
    """Control steps per episode."""
    success_radius: float = 0.5
    """Reached within this distance, metres."""
    wall_margin: float = 0.3
    """Clearance of starts and goals from walls, metres."""
    planners: tuple[str, ...] = ("chaining", "sequence")
    """High levels to run with each variant (``planners.PLANNERS`` names)."""


def far_goal_episodes(layout: Any, seed: int, config: EvalConfig) -> list[tuple[np.ndarray, ...]]:
    """``goals_per_seed`` pairs ``(start (2,), goal (2,))`` with goal >= ``min_cells`` away."""
    from envs.tasks import bfs_cell_distances

    rng = np.random.default_rng(seed)
    episodes = []
    while len(episodes) < config.goals_per_seed:
        start = layout.sample_free(rng, 1, margin=config.wall_margin)[0]
        distances = bfs_cell_distances(layout, layout.cell_of(start))
        if distances.max() < config.min_cells:
            continue
        for _ in range(1000):
            goal = layout.sample_free(rng, 1, margin=config.wall_margin)[0]
            if distances[layout.cell_of(goal)] >= config.min_cells:
                episodes.append((start, goal))
                break
    return episodes


def evaluate(skill: Any, planner: str, seed: int, config: EvalConfig) -> dict[str, Any]:
    """Runs ``skill`` under ``planner`` on the far-goal episodes of ``seed``."""
    import envs

    env = envs.make_env(config.env_id, max_episode_steps=config.max_steps + 1)
    layout, xy = env.unwrapped.layout, envs.xy_indices(env)
    loop = ControlLoop(LoopConfig(control_period_s=float(env.unwrapped.dt)))
    reached, steps, final = [], [], []
    for index, (start, goal) in enumerate(far_goal_episodes(layout, seed, config)):
        high_level = build_goal_follower(
            planner,
            skill,
            goal[None],
            xy,
            SequenceConfig(config.success_radius, config.max_steps),
            seed=seed,
        )
        agent = HierarchicalAgent(high_level, skill)
        loop.run(
            agent,
            env,
            max_steps=config.max_steps + 1,
            seed=seed * 1000 + index,
            reset_options={"start_xy": start},
        )
        record = high_level.summary()["goals"][0]
        reached.append(record["reached"])
        steps.append(record["steps"])
        final.append(record["final_distance"])
    env.close()
    return {
        "success_rate": float(np.mean(reached)),
        "mean_steps": float(np.mean(steps)),
        "mean_final_distance": float(np.mean(final)),
        "reached": [bool(r) for r in reached],
    }


def run_variants(
    variants: dict[str, str],
    seeds: list[int],
    config: EvalConfig,
    out_dir: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluates every (variant, planner, seed); writes ``far_goals.csv`` and ``summary.json``.

    Args:
        variants: label -> skill reference (registry name or package directory).
        seeds: evaluation seeds (each gives its own far-goal episodes).
        config: what to run.
        out_dir: output directory.
        progress: show a progress bar.

    Returns:
        JSON-ready report: rows, per (variant, planner) mean and per-seed success rates, paths.
    """
    from tqdm import tqdm

    from hrl_runtime.registry import SkillRegistry

    registry = SkillRegistry()
    skills = {label: registry.load(ref) for label, ref in variants.items()}
    rows = []
    started = time.perf_counter()
    jobs = [(v, p, s) for v in variants for p in config.planners for s in seeds]
    for label, planner, seed in tqdm(jobs, disable=not progress, unit="run"):
        result = evaluate(skills[label], planner, seed, config)
        rows.append({"variant": label, "planner": planner, "seed": seed, **result})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "far_goals.csv"
    fields = ["variant", "skill", "planner", "seed", "success_rate", "mean_steps",
              "mean_final_distance"]  # fmt: skip
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({**{k: row[k] for k in fields if k != "skill"},
                             "skill": variants[row["variant"]]})  # fmt: skip
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        cell = table.setdefault(f"{row['variant']}|{row['planner']}", {"per_seed": []})
        cell["per_seed"].append(row["success_rate"])
    for cell in table.values():
        cell["mean"] = float(np.mean(cell["per_seed"]))
    report = {
        "config": asdict(config),
        "variants": variants,
        "seeds": list(seeds),
        "rows": rows,
        "table": table,
        "csv": str(csv_path),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def markdown_table(report: dict[str, Any]) -> list[str]:
    """The report's success rates as Markdown lines: one row per (variant, planner)."""
    seeds = report["seeds"]
    lines = [
        "| variant | planner | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
        "|---|---|" + "---|" * (len(seeds) + 1),
    ]
    for key, cell in report["table"].items():
        variant, planner = key.split("|")
        values = " | ".join(f"{v:.2f}" for v in cell["per_seed"])
        lines.append(f"| {variant} | {planner} | {values} | {cell['mean']:.2f} |")
    return lines

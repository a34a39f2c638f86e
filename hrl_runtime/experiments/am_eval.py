"""Far-goal evaluation of Actionable Models variants: which training, which high level.

:func:`train_variants` trains each variant (:data:`VARIANTS`: goal chaining and conservative
negatives, without chaining, without negatives) once per training seed, each run its own
``hrl train am`` process. :func:`run_variants` evaluates every package under every planner on
far-goal episodes: each starts at a random free point and has one goal at least ``min_cells``
BFS cells away (in a maze whose training trajectories each cover only a few cells, such goals
need stitching); every package sees the same episodes. The result is a CSV, a JSON summary and
a Markdown table of success rates, one column per training seed.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.agent import HierarchicalAgent
from hrl_runtime.loop import ControlLoop, LoopConfig
from planners.factory import build_goal_follower
from planners.sequence import SequenceConfig

VARIANTS: dict[str, tuple[str, ...]] = {
    # label: extra `hrl train am` flags
    "chaining": (),
    "no-chaining": ("--no-chaining",),
    "no-negatives": ("--no-negatives",),
}
"""The training variants of the ablation: the full method, and each with one part removed."""


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


def far_goal_episodes(layout: Any, seed: int, config: EvalConfig) -> list[tuple[np.ndarray, ...]]:
    """``goals_per_seed`` pairs ``(start (2,), goal (2,))`` with goal >= ``min_cells`` away."""
    from envs.far_goal import bfs_cell_distances

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


def _in_sight(layout: Any, a: np.ndarray, b: np.ndarray, clearance: float) -> bool:
    points = a + np.linspace(0.0, 1.0, 40)[:, None] * (b - a)
    return bool(layout.free_mask(points, clearance).all())


def _first_leg(layout: Any, start: np.ndarray, goal: np.ndarray, clearance: float):
    """The farthest waypoint of the shortest corridor path in sight of ``start``, and the
    path's length (metres)."""
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
            blocked_heads.append(heads_along(a, b, _first_leg(layout, a, b, config.clearance)[0]))
    far_heads, log_values, lengths = [], [], []
    for a, b in pairs(config.far_pairs, config.far_distance):
        leg, length = _first_leg(layout, a, b, config.clearance)
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


def train_variants(
    dataset: Path | str,
    steps: int,
    seeds: list[int],
    out_dir: Path,
    variants: tuple[str, ...] = tuple(VARIANTS),
    jobs: int = 2,
    progress: bool = True,
) -> dict[str, list[str]]:
    """Trains every (variant, seed) with ``hrl train am``, each in its own process.

    Runs resume from their checkpoints, so an interrupted comparison continues where it
    stopped and a finished run is only re-packaged.

    Args:
        dataset: the HDF5 trajectories.
        steps: gradient steps per run.
        seeds: training seeds.
        out_dir: packages go to ``out_dir/<variant>/seed-<seed>``.
        variants: labels of :data:`VARIANTS` to train.
        jobs: runs side by side (one core each: thread pools are pinned to one thread).
        progress: show a progress bar.

    Returns:
        variant -> package directories, in the order of ``seeds``.

    Raises:
        RuntimeError: a run failed (its error output is included).
    """
    from hrl_runtime.experiments.processes import run_json_processes

    runs = [(label, seed) for label in variants for seed in seeds]
    commands = [
        [
            sys.executable,
            "-m",
            "hrl_runtime.cli",
            "train",
            "am",
            "--dataset",
            str(dataset),
            "--out",
            str(Path(out_dir) / label / f"seed-{seed}"),
            "--name",
            f"am-{label}-seed-{seed}",
            "--steps",
            str(steps),
            "--seed",
            str(seed),
            "--resume",
            "--json",
            *VARIANTS[label],
        ]
        for label, seed in runs
    ]
    names = [f"training {label} seed {seed}" for label, seed in runs]
    reports = run_json_processes(commands, names, jobs, progress)
    packages = [report["package"] for report in reports]
    trained: dict[str, list[str]] = {label: [] for label in variants}
    for (label, _), package in zip(runs, packages, strict=True):
        trained[label].append(package)
    return trained


def run_variants(
    variants: dict[str, list[str]],
    seeds: list[int],
    config: EvalConfig,
    out_dir: Path,
    progress: bool = True,
    package_labels: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluates every (variant, package, planner) on the far goals of every evaluation seed.

    Writes ``far_goals.csv`` (one row per package, planner and evaluation seed),
    ``far_goals.md`` (the tables of :func:`markdown_table` and :func:`value_table`) and
    ``summary.json`` (the returned report).

    Args:
        variants: label -> skill references (registry names or package directories), one per
            training seed.
        seeds: evaluation seeds (each gives its own ``goals_per_seed`` far-goal episodes).
        config: what to run.
        out_dir: output directory.
        progress: show a progress bar.
        package_labels: the tables' column headers, one per package (e.g. "training seed 0").
        metadata: more fields for the report (e.g. how the packages were trained).

    Returns:
        JSON-ready report: rows, per (variant, planner) the success rate of each package over
        all evaluation episodes and their mean, the value diagnostics, and ``markdown``.
    """
    from tqdm import tqdm

    from hrl_runtime.registry import SkillRegistry

    registry = SkillRegistry()
    skills = {ref: registry.load(ref) for refs in variants.values() for ref in refs}
    rows = []
    started = time.perf_counter()
    jobs = [
        (label, index, ref, planner, seed)
        for label, refs in variants.items()
        for index, ref in enumerate(refs)
        for planner in config.planners
        for seed in seeds
    ]
    diagnostics = {}
    if config.value_check is not None:
        from envs import make_env

        env = make_env(config.env_id)
        layout = env.unwrapped.layout
        env.close()
        for ref, skill in skills.items():
            diagnostics[ref] = value_diagnostics(skill, layout, config.value_check)
    for label, index, ref, planner, seed in tqdm(jobs, disable=not progress, unit="run"):
        result = evaluate(skills[ref], planner, seed, config)
        rows.append(
            {"variant": label, "package": index, "skill": ref, "planner": planner,
             "seed": seed, **result}
        )  # fmt: skip
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "far_goals.csv"
    fields = ["variant", "package", "skill", "planner", "seed", "success_rate", "mean_steps",
              "mean_final_distance"]  # fmt: skip
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in fields})
    table: dict[str, dict[str, Any]] = {}
    for label, refs in variants.items():
        for planner in config.planners:
            per_package = []
            for ref in refs:
                reached = [
                    flag
                    for row in rows
                    if row["variant"] == label and row["skill"] == ref and row["planner"] == planner
                    for flag in row["reached"]
                ]
                per_package.append(float(np.mean(reached)))
            table[f"{label}|{planner}"] = {
                "per_package": per_package,
                "mean": float(np.mean(per_package)),
            }
    values: dict[str, dict[str, float]] = {}
    for label, refs in variants.items():
        if all(ref in diagnostics for ref in refs):
            values[label] = {
                key: float(np.mean([diagnostics[ref][key] for ref in refs]))
                for key in diagnostics[refs[0]]
            }
    report = {
        "config": asdict(config),
        "variants": variants,
        "seeds": list(seeds),
        "rows": rows,
        "table": table,
        "value_diagnostics": {"per_package": diagnostics, "per_variant": values},
        "csv": str(csv_path),
        "wall_seconds": round(time.perf_counter() - started, 1),
        **(metadata or {}),
    }
    if package_labels is not None:
        report["package_labels"] = list(package_labels)
    values_lines = value_table(report)
    report["markdown"] = "\n".join(
        [*markdown_table(report), *(["", *values_lines] if values_lines else [])]
    )
    (out_dir / "far_goals.md").write_text(report["markdown"] + "\n")
    (out_dir / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


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


def markdown_table(report: dict[str, Any], column: str = "package") -> list[str]:
    """The report's success rates as Markdown lines: one row per (variant, planner), one
    column per package (``column`` names them, e.g. ``"training seed 0"``, numbered)."""
    count = max(len(cell["per_package"]) for cell in report["table"].values())
    names = report.get("package_labels") or [f"{column} {i}" for i in range(count)]
    lines = [
        "| variant | planner | " + " | ".join(names) + " | mean |",
        "|---|---|" + "---:|" * (count + 1),
    ]
    for key, cell in report["table"].items():
        variant, planner = key.split("|")
        values = " | ".join(f"{v:.2f}" for v in cell["per_package"])
        lines.append(f"| {variant} | {planner} | {values} | {cell['mean']:.2f} |")
    return lines

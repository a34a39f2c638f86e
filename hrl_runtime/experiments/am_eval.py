"""Far-goal evaluation of Actionable Models variants: which training, which high level.

:func:`train_variants` trains each variant (:data:`VARIANTS`: goal chaining and conservative
negatives, without chaining, without negatives) once per training seed, each run a trial
(:func:`train_one`) on the local backend or on Ray (:mod:`hrl_runtime.experiments.backends`).
:func:`run_variants` evaluates every package under every planner on far-goal episodes: each
starts at a random free point and has one goal at least ``min_cells`` BFS cells away (in a maze
whose training trajectories each cover only a few cells, such goals need stitching); every
package sees the same episodes; with a backend, each (package, planner) is a trial
(:func:`evaluate_trial`). The result is a CSV, a JSON summary and a Markdown table of
success rates, one column per training seed, with the value diagnostics of
:mod:`hrl_runtime.experiments.am_values` beside them.
"""

from __future__ import annotations

import csv
import json
import shlex
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.agent import HierarchicalAgent
from hrl_runtime.experiments.am_config import EvalConfig
from hrl_runtime.experiments.am_values import value_diagnostics, value_table
from hrl_runtime.experiments.backends import BackendConfig, run_all
from hrl_runtime.experiments.trials import Trial
from hrl_runtime.loop import ControlLoop, LoopConfig
from planners.factory import build_goal_follower
from planners.sequence import SequenceConfig

VARIANTS: dict[str, dict[str, bool]] = {
    # label: the parts of the method (ActionableConfig fields) it leaves out
    "chaining": {},
    "no-chaining": {"chaining": False},
    "no-negatives": {"negatives": False},
}
"""The training variants of the ablation: the full method, and each with one part removed."""


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


def evaluate(
    skill: Any, planner: str, seed: int, config: EvalConfig, threads: int | None = None
) -> dict[str, Any]:
    """Runs ``skill`` under ``planner`` on the far-goal episodes of ``seed`` (the planner's numba
    pool with ``threads``, None: the loop's default)."""
    import envs

    env = envs.make_env(config.env_id, max_episode_steps=config.max_steps + 1)
    layout, xy = env.unwrapped.layout, envs.xy_indices(env)
    loop = ControlLoop(LoopConfig(control_period_s=float(env.unwrapped.dt), threads=threads))
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


def train_variants(
    dataset: Path | str,
    steps: int,
    seeds: list[int],
    out_dir: Path,
    variants: tuple[str, ...] = tuple(VARIANTS),
    jobs: int = 2,
    progress: bool = True,
    backend: BackendConfig | None = None,
) -> dict[str, list[str]]:
    """Trains every (variant, seed) with :func:`train_one`, each a trial of its own.

    Runs resume from their checkpoints, so an interrupted comparison continues where it
    stopped and a finished run is only re-packaged. On a cluster, ``dataset`` and ``out_dir``
    must be paths every node sees (a shared file system).

    Args:
        dataset: the HDF5 trajectories.
        steps: gradient steps per run.
        seeds: training seeds.
        out_dir: packages go to ``out_dir/<variant>/seed-<seed>``.
        variants: labels of :data:`VARIANTS` to train.
        jobs: runs side by side when ``backend`` is None (local processes, one core each).
        progress: show a progress bar.
        backend: where the runs go (default: local processes, ``jobs`` at a time).

    Returns:
        variant -> package directories, in the order of ``seeds``.

    Raises:
        TrialsFailed: a run failed on every attempt (its error output is included).
    """
    backend = backend or BackendConfig(jobs=jobs)
    runs = [(label, seed) for label in variants for seed in seeds]
    trials = [
        Trial(
            f"{__name__}:train_one",
            {
                "variant": label,
                "dataset": str(Path(dataset).resolve()),
                "out_dir": str((Path(out_dir) / label / f"seed-{seed}").resolve()),
                "name": f"am-{label}-seed-{seed}",
                "steps": steps,
                "seed": seed,
            },
            name=f"training {label} seed {seed}",
        )
        for label, seed in runs
    ]
    reports = run_all(trials, backend, progress)
    trained: dict[str, list[str]] = {label: [] for label in variants}
    for (label, _), report in zip(runs, reports, strict=True):
        trained[label].append(report["package"])
    return trained


def train_one(
    variant: str, dataset: Path | str, out_dir: Path, name: str, steps: int, seed: int
) -> dict[str, Any]:
    """Trains (or resumes) one variant in this process, configured as ``hrl train am`` would.

    Args:
        variant: a label of :data:`VARIANTS`.
        dataset: the HDF5 trajectories.
        out_dir: the package directory (checkpoints inside).
        name: the package name.
        steps: gradient steps.
        seed: training seed.

    Returns:
        ``{"package": directory, "metrics": the manifest's metrics}``.
    """
    import envs
    from skill_library.actionable import ActionableConfig, train_actionable

    parts = {"chaining": True, "negatives": True} | VARIANTS[variant]
    config = replace(ActionableConfig(), steps=steps, seed=seed, **parts)
    # The manifest records the `hrl train am` command that trains the same package.
    argv = ["train", "am", "--dataset", str(dataset), "--out", str(out_dir), "--name", name,
            "--steps", str(steps), "--seed", str(seed), "--resume", "--json",
            *[f"--no-{part}" for part, used in parts.items() if not used]]  # fmt: skip
    path = train_actionable(
        envs.load_dataset(str(dataset)),
        config,
        Path(out_dir),
        name=name,
        command="hrl " + shlex.join(argv),
        resume=True,
        progress=False,
    )
    metrics = json.loads((path / "skill.json").read_text())["metrics"]
    return {"package": str(path), "metrics": metrics}


def run_variants(
    variants: dict[str, list[str]],
    seeds: list[int],
    config: EvalConfig,
    out_dir: Path,
    progress: bool = True,
    package_labels: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    backend: BackendConfig | None = None,
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
        backend: where the episodes run: one trial per (package, planner) with its planner
            pinned to the trial's CPUs (the same rows on either backend); None: here, one after
            another.

    Returns:
        JSON-ready report: rows, per (variant, planner) the success rate of each package over
        all evaluation episodes and their mean, the value diagnostics, and ``markdown``.
    """
    from hrl_runtime.registry import SkillRegistry

    registry = SkillRegistry()
    skills = {ref: registry.load(ref) for refs in variants.values() for ref in refs}
    started = time.perf_counter()
    diagnostics = _diagnose_packages(skills, config)
    if backend is None:
        rows = _evaluate_packages(variants, skills, seeds, config, progress)
    else:
        rows = _evaluate_trials(variants, seeds, config, backend, progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = _write_rows(rows, out_dir / "far_goals.csv")
    report = {
        "config": asdict(config),
        "variants": variants,
        "seeds": list(seeds),
        "rows": rows,
        "table": _success_table(rows, variants, config.planners),
        "value_diagnostics": {
            "per_package": diagnostics,
            "per_variant": _diagnostics_per_variant(variants, diagnostics),
        },
        "csv": str(csv_path),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "backend": None if backend is None else backend.backend,
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


def _diagnose_packages(skills: dict[str, Any], config: EvalConfig) -> dict[str, dict[str, float]]:
    """:func:`value_diagnostics` of every package in the maze of ``config.env_id`` (or none)."""
    if config.value_check is None:
        return {}
    from envs import make_env

    env = make_env(config.env_id)
    layout = env.unwrapped.layout
    env.close()
    return {
        ref: value_diagnostics(skill, layout, config.value_check) for ref, skill in skills.items()
    }


def _evaluate_packages(
    variants: dict[str, list[str]],
    skills: dict[str, Any],
    seeds: list[int],
    config: EvalConfig,
    progress: bool,
) -> list[dict[str, Any]]:
    """One row per (variant, package, planner, evaluation seed): :func:`evaluate`'s result."""
    from tqdm import tqdm

    jobs = [
        (label, index, ref, planner, seed)
        for label, refs in variants.items()
        for index, ref in enumerate(refs)
        for planner in config.planners
        for seed in seeds
    ]
    rows = []
    for label, index, ref, planner, seed in tqdm(jobs, disable=not progress, unit="run"):
        result = evaluate(skills[ref], planner, seed, config)
        rows.append(
            {
                "variant": label,
                "package": index,
                "skill": ref,
                "planner": planner,
                "seed": seed,
                **result,
            }
        )
    return rows


def evaluate_trial(
    skill_ref: str, planner: str, seeds: list[int], config: dict[str, Any], threads: int = 1
) -> list[dict[str, Any]]:
    """:func:`evaluate` of one package under one planner on every seed, in this process.

    Args:
        skill_ref: registry name or package directory.
        planner: the high level.
        seeds: evaluation seeds.
        config: the fields of an :class:`EvalConfig` (``value_check`` left out).
        threads: the planner's numba threads.

    Returns:
        One result of :func:`evaluate` per seed.
    """
    from hrl_runtime.registry import SkillRegistry

    fields = {**config, "planners": tuple(config["planners"]), "value_check": None}
    evaluation = EvalConfig(**fields)
    skill = SkillRegistry().load(skill_ref)
    return [evaluate(skill, planner, seed, evaluation, threads) for seed in seeds]


def _evaluate_trials(
    variants: dict[str, list[str]],
    seeds: list[int],
    config: EvalConfig,
    backend: BackendConfig,
    progress: bool,
) -> list[dict[str, Any]]:
    """The rows of :func:`_evaluate_packages`, one :func:`evaluate_trial` per (package,
    planner) on ``backend``."""
    fields = {k: v for k, v in asdict(config).items() if k != "value_check"}
    refs = list(dict.fromkeys(ref for refs in variants.values() for ref in refs))
    pairs = [(ref, planner) for ref in refs for planner in config.planners]
    trials = [
        Trial(
            f"{__name__}:evaluate_trial",
            {
                "skill_ref": ref,
                "planner": planner,
                "seeds": list(seeds),
                "config": fields,
                "threads": backend.cpus_per_trial,
            },
            name=f"far goals of {ref} under {planner}",
        )
        for ref, planner in pairs
    ]
    results = dict(zip(pairs, run_all(trials, backend, progress), strict=True))
    return [
        {"variant": label, "package": index, "skill": ref, "planner": planner, "seed": seed,
         **result}
        for label, refs in variants.items()
        for index, ref in enumerate(refs)
        for planner in config.planners
        for seed, result in zip(seeds, results[ref, planner], strict=True)
    ]  # fmt: skip


def _write_rows(rows: list[dict[str, Any]], path: Path) -> Path:
    """The rows as CSV (without the per-episode flags)."""
    fields = ["variant", "package", "skill", "planner", "seed", "success_rate", "mean_steps",
              "mean_final_distance"]  # fmt: skip
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in fields})
    return path


def _success_table(
    rows: list[dict[str, Any]], variants: dict[str, list[str]], planners: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """``"variant|planner"`` -> each package's success rate over all its episodes, and the mean."""
    table: dict[str, dict[str, Any]] = {}
    for label, refs in variants.items():
        for planner in planners:
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
    return table


def _diagnostics_per_variant(
    variants: dict[str, list[str]], diagnostics: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Each variant's value diagnostics, the mean over its packages (if all were measured)."""
    values: dict[str, dict[str, float]] = {}
    for label, refs in variants.items():
        if all(ref in diagnostics for ref in refs):
            values[label] = {
                key: float(np.mean([diagnostics[ref][key] for ref in refs]))
                for key in diagnostics[refs[0]]
            }
    return values


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

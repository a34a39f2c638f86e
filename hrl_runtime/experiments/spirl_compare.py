"""The downstream comparison: SPiRL vs SAC in skill space without the prior vs flat SAC on raw
actions, same control-step budget, several seeds; learning curves as CSV and PNG.

Each (method, seed) run is a trial (:func:`run_one`) on the local backend or on Ray
(:mod:`hrl_runtime.experiments.backends`): its own process with pinned thread pools, so runs go
side by side on separate cores, or machines.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.experiments.backends import BackendConfig, run_all
from hrl_runtime.experiments.trials import Trial

METHODS = ("spirl", "skill_sac", "flat_sac")


def run_one(
    method: str,
    seed: int,
    skill_ref: str,
    env_id: str,
    steps: int,
    eval_every: int,
    eval_episodes: int = 5,
):
    """One training run in this process (torch's threads as the trial pinned them); returns its
    learning curve."""
    from hrl_runtime.registry import SkillRegistry
    from skill_library.spirl.downstream import SPiRLConfig, SPiRLTrainer

    skill = None if method == "flat_sac" else SkillRegistry().load(skill_ref)
    config = SPiRLConfig(
        env_steps=steps,
        method=method,
        seed=seed,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
    )
    trainer = SPiRLTrainer(skill, env_id, config)
    curve = trainer.train(progress=False)
    return {"method": method, "seed": seed, "curve": curve, "seconds": trainer.seconds}


def run_comparison(
    skill_ref: str,
    env_id: str,
    steps: int,
    seeds: list[int],
    out_dir: Path,
    jobs: int = 2,
    eval_every: int = 30_000,
    methods: tuple[str, ...] = METHODS,
    progress: bool = True,
    backend: BackendConfig | None = None,
    eval_episodes: int = 5,
) -> dict[str, Any]:
    """Runs every (method, seed) and writes ``curves.csv``, ``curves.png`` and ``summary.json``.

    Args:
        skill_ref: the skill with a prior.
        env_id: the downstream task.
        steps: control steps per run.
        seeds: one run per method and seed.
        out_dir: output directory.
        jobs: runs side by side when ``backend`` is None (the local backend).
        eval_every: control steps between evaluations.
        methods: which of :data:`METHODS`.
        progress: show a progress bar.
        backend: where the runs go (default: local processes, ``jobs`` at a time); each run is a
            trial of :func:`run_one` with one CPU, so either backend gives the same curves.
        eval_episodes: episodes of each evaluation.

    Raises:
        TrialsFailed: a run failed on every attempt.
    """
    backend = backend or BackendConfig(jobs=jobs)
    runs = [(m, s) for s in seeds for m in methods]
    trials = [
        Trial(
            f"{__name__}:run_one",
            {
                "method": method,
                "seed": seed,
                "skill_ref": skill_ref,
                "env_id": env_id,
                "steps": steps,
                "eval_every": eval_every,
                "eval_episodes": eval_episodes,
            },
            name=f"run {method} seed {seed}",
        )
        for method, seed in runs
    ]
    started = time.perf_counter()
    results = run_all(trials, backend, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_curves(results, out_dir / "curves.csv")
    summary = {
        method: {
            "final_success_rate_per_seed": [
                r["curve"][-1]["success_rate"] for r in results if r["method"] == method
            ],
            "seconds_per_run": float(
                np.mean([r["seconds"] for r in results if r["method"] == method])
            ),
        }
        for method in methods
    }
    for row in summary.values():
        row["final_success_rate_mean"] = float(np.mean(row["final_success_rate_per_seed"]))
    report = {
        "skill": skill_ref,
        "env": env_id,
        "env_steps": steps,
        "seeds": seeds,
        "methods": summary,
        "csv": str(out_dir / "curves.csv"),
        "plot": str(plot_curves(results, out_dir / "curves.png", env_id)),
        "backend": backend.backend,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def write_curves(results: list[dict[str, Any]], path: Path) -> None:
    """``curves.csv``: one row per (method, seed, evaluation point)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "seed", "env_steps", "success_rate", "mean_return"])
        for result in results:
            for point in result["curve"]:
                writer.writerow(
                    [result["method"], result["seed"], point["env_steps"], point["success_rate"],
                     point["mean_return"]]
                )  # fmt: skip


def plot_curves(results: list[dict[str, Any]], path: Path, env_id: str) -> Path:
    """Success rate against control steps: mean over seeds, with the spread shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"spirl": "SPiRL (prior)", "skill_sac": "SAC in skill space", "flat_sac": "flat SAC"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for method in METHODS:
        runs = [r["curve"] for r in results if r["method"] == method]
        if not runs:
            continue
        length = min(len(c) for c in runs)
        x = np.array([c[i]["env_steps"] for i in range(length) for c in runs[:1]])
        y = np.array([[c[i]["success_rate"] for i in range(length)] for c in runs])
        ax.plot(x, y.mean(0), label=labels[method], lw=2)
        ax.fill_between(x, y.min(0), y.max(0), alpha=0.2)
    ax.set_xlabel("environment control steps")
    ax.set_ylabel("success rate (deterministic policy)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"{env_id}: sparse reward, {len({r['seed'] for r in results})} seeds", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

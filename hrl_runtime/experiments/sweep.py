"""Sweeps: one run per (skill, planner, seed), on either backend, streamed to disk, resumable.

``hrl sweep follow`` runs goal following (:func:`follow_trial`) and ``hrl sweep eval`` a
high-level policy (:func:`eval_trial`) once per combination, each a
:class:`~hrl_runtime.experiments.trials.Trial`. Every finished trial is appended to
``trials.jsonl`` in the output directory (flushed and synced) before the next is looked at, so
an interrupted sweep, run again with the same arguments, skips what finished and runs the rest.
Trials run the synchronous loop with pinned threads: the same seed gives the same row on the
local backend and on Ray. The report has one row per trial and, per (skill, planner) group, the
mean success rate with its 95% confidence interval over seeds.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime import checks
from hrl_runtime.errors import ConfigError
from hrl_runtime.experiments.backends import BackendConfig, make_backend
from hrl_runtime.experiments.trials import Trial, TrialsFailed, mean_interval

logger = logging.getLogger(__name__)

MAX_SEEDS = 10_000
"""Most seeds one sweep takes."""
RESULTS_FILE = "trials.jsonl"
"""The file in the output directory that holds one finished trial per line."""
DEFAULT_STEPS_PER_GOAL = 1000
"""Steps per goal for environments that declare no episode length (as ``hrl follow``)."""


def parse_seeds(value: Any, name: str = "--seeds") -> list[int]:
    """Seeds from ``"1-8"``, ``"0,3,7"`` or ``"1-4,10-12"`` (ranges inclusive), in order.

    Raises:
        ConfigError: a malformed entry, a seed out of range, a repeated seed or too many seeds.
    """
    fix = "write seeds as 1-8 or 0,3,7 (ranges inclusive)"
    text = str(value)
    if len(text) > checks.MAX_TEXT:
        raise ConfigError(f"{name} {checks.shorten(text)} is too long; {fix}")
    seeds: list[int] = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        low = checks.seed(first, name)
        high = checks.seed(last, name) if dash else low
        if high < low or high - low >= MAX_SEEDS:
            raise ConfigError(f"{name} {checks.shorten(part.strip())} is not a range; {fix}")
        seeds.extend(range(low, high + 1))
        if len(seeds) > MAX_SEEDS:
            raise ConfigError(f"{name} gives more than {MAX_SEEDS} seeds; give fewer")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{name} {checks.shorten(text)} repeats a seed; give each seed once")
    return seeds


def follow_trial(
    skill: str,
    env: str,
    planner: str,
    seed: int,
    random_goals: int | None = None,
    goals: list[list[float]] | None = None,
    max_steps: int | None = None,
    radius: float | None = None,
    threads: int = 1,
    perturb: str | None = None,
) -> dict[str, Any]:
    """One ``hrl follow --sync --seed SEED --threads THREADS [--perturb PERTURB]`` run, in this
    process.

    Args:
        skill: skill reference (name, ``NAME@VERSION`` or directory).
        env: environment id.
        planner: high level (``planners.PLANNERS``).
        seed: seed of the goals (when sampled), the resets and the planner.
        random_goals: sample this many goals from the env's goal space (or give ``goals``).
        goals: ``(N, 2)`` goals, metres.
        max_steps: control steps per goal (default: the env's episode length).
        radius: success radius, metres (default: the env's).
        threads: numba threads of the planner.
        perturb: the body, as ``--perturb`` writes it (``gain=0.4,mirror=x``; None: nominal).

    Returns:
        ``{"row": per-goal outcomes and the success rate, "seconds": the run's wall time}``.
    """
    import envs
    from hrl_runtime.experiments.follow import FollowConfig, follow_goals, validate_goals
    from hrl_runtime.registry import load_skill
    from planners import SequenceConfig, build_goal_follower

    started = time.perf_counter()
    steps_per_goal = max_steps or envs.episode_steps(env) or DEFAULT_STEPS_PER_GOAL
    count = len(goals) if goals is not None else int(random_goals or 0)
    plant = envs.make_env(env, max_episode_steps=steps_per_goal * count + 1)
    if perturb is not None:
        from envs.perturb import Perturbation, PerturbedBody

        plant = PerturbedBody(plant, Perturbation.parse(perturb))
    xy, space = envs.xy_indices(plant), envs.goal_space(plant)
    if goals is None:
        if space is None:
            raise ConfigError(f"{env} has no goal space to sample from; give goals")
        targets = space.sample(np.random.default_rng(seed), count)
    else:
        targets = np.asarray(goals, np.float64)
    validate_goals(targets, space, env)
    controller = load_skill(skill)
    radius = envs.success_radius(env) if radius is None else radius
    config = FollowConfig(
        success_radius=radius,
        steps_per_goal=steps_per_goal,
        asynchronous=False,
        seed=seed,
        threads=threads,
        reset_each_goal=space is not None and space.start_distance is not None,
    )

    def make_high_level(part: np.ndarray) -> Any:
        sequence = SequenceConfig(radius, steps_per_goal)
        return build_goal_follower(planner, controller, part, xy, sequence, seed=seed)

    report = follow_goals(
        controller,
        make_high_level(targets),
        plant,
        env_id=env,
        planner=planner,
        goals=targets,
        xy_indices=xy,
        config=config,
        control_period_s=float(plant.unwrapped.dt),
        make_high_level=make_high_level,
    )
    plant.close()
    return {"row": follow_row(report.to_json()), "seconds": time.perf_counter() - started}


def follow_row(payload: dict[str, Any]) -> dict[str, Any]:
    """A sweep row of a follow report's JSON: success, goals, per-goal outcomes, faults."""
    outcomes = payload["goals"]
    return {
        "success_rate": payload["success_rate"],
        "goals": [list(map(float, goal["goal"])) for goal in outcomes],
        "reached": [bool(goal["reached"]) for goal in outcomes],
        "final_distance": [goal["final_distance"] for goal in outcomes],
        "mean_normalized_distance": payload["mean_normalized_distance"],
        "steps": payload["steps"],
        "falls": payload["falls"],
        "faults": payload["faults"],
    }


def eval_trial(
    policy: str, env: str, episodes: int, seed: int, skill: str | None = None, threads: int = 1
) -> dict[str, Any]:
    """One ``hrl eval --sync --seed SEED --threads THREADS`` run, in this process.

    Returns:
        ``{"row": success rate, mean return and steps, per-episode success, "seconds": ...}``.
    """
    from hrl_runtime.experiments.policy_eval import evaluate_policy

    started = time.perf_counter()
    report = evaluate_policy(
        policy, env, episodes, seed, skill, asynchronous=False, threads=threads
    )
    row = {
        "success_rate": report["success_rate"],
        "mean_return": report["mean_return"],
        "mean_steps": report["mean_steps"],
        "success": [bool(e["success"]) for e in report["per_episode"]],
        "faults": report["faults"],
    }
    return {"row": row, "seconds": time.perf_counter() - started}


def run_trial(task: str, seed: int, threads: int = 1, perturb: str | None = None) -> dict[str, Any]:
    """One ``hrl run TASK`` with the task's seed replaced by ``seed``, in this process.

    A task file runs in the asynchronous loop paced to the wall clock (as on a robot), so its
    rows can differ between two runs of one seed where a plan lands a tick earlier or later.

    Returns:
        ``{"row": success (1.0 or 0.0 as ``success_rate``), reason, steps, deadline misses,
        faults, the path of task steps, "seconds": the run's wall time}``.
    """
    import dataclasses

    from hrl_runtime.taskfiles import load_task, run_task

    started = time.perf_counter()
    perturbation = None
    if perturb is not None:
        from envs.perturb import Perturbation

        perturbation = Perturbation.parse(perturb)
    spec = dataclasses.replace(load_task(task), seed=seed)
    report = run_task(spec, threads=threads, perturbation=perturbation).to_json()
    row = {
        "success_rate": 1.0 if report["success"] else 0.0,
        "reason": report["reason"],
        "steps": report["total_steps"],
        "deadline_misses": report["deadline_misses"],
        "faults": report["faults"],
        "path": report["path"],
    }
    return {"row": row, "seconds": time.perf_counter() - started}


def run_trials(
    trials: list[Trial], out_dir: Path, backend: BackendConfig, progress: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """Runs the trials not yet in ``out_dir/trials.jsonl``, appending each as it finishes.

    Args:
        trials: the sweep (trials with equal keys are one trial).
        out_dir: where ``trials.jsonl`` is (created if missing).
        backend: where the trials run.
        progress: show a progress bar on stderr.

    Returns:
        Every trial's result, in the order of ``trials``, and how many were run now (the rest
        were on disk).

    Raises:
        TrialsFailed: trials failed on every attempt (the finished ones are on disk).
    """
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULTS_FILE
    finished = read_finished(path)
    todo = list({t.key: t for t in trials if t.key not in finished}.values())
    if todo:
        logger.info("%d trials to run, %d finished before", len(todo), len(trials) - len(todo))
        runner = make_backend(backend)
        try:
            with (
                open(path, "a") as handle,
                tqdm(total=len(todo), disable=not progress, file=sys.stderr, unit="trial") as bar,
            ):
                for trial, result in runner.run(todo):
                    record = {"key": trial.key, "name": trial.label(), "function": trial.function,
                              "kwargs": trial.kwargs, "result": result}  # fmt: skip
                    handle.write(json.dumps(record) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                    finished[trial.key] = record
                    bar.update()
        except TrialsFailed as error:
            raise TrialsFailed(error.failures, kept=path) from None
        finally:
            runner.close()
    return [finished[t.key]["result"] for t in trials], len(todo)


def read_finished(path: Path) -> dict[str, dict[str, Any]]:
    """The trials recorded in ``path`` by key. A last line cut short by an interruption is
    dropped from the file (its trial runs again)."""
    if not path.exists():
        return {}
    text = path.read_text()
    if text and not text.endswith("\n"):
        logger.warning("%s: dropping an incomplete last line (its trial runs again)", path)
        text = text[: text.rfind("\n") + 1]
        path.write_text(text)
    finished = {}
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
            finished[record["key"]] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(
                f"{path} line {number} is not a trial record; move the file away to start the "
                "sweep afresh"
            ) from None
    return finished


def sweep(
    kind: str,
    base: dict[str, Any],
    axes: dict[str, list[Any]],
    seeds: list[int],
    out_dir: Path,
    backend: BackendConfig,
    progress: bool = False,
) -> dict[str, Any]:
    """Runs ``follow`` or ``eval`` trials for every combination of ``axes`` and every seed.

    Args:
        kind: ``"follow"`` (:func:`follow_trial`), ``"eval"`` (:func:`eval_trial`) or
            ``"run"`` (:func:`run_trial`).
        base: the trial arguments every run shares (``threads`` is set to the CPUs per trial).
        axes: argument name -> values to sweep (e.g. ``{"skill": [...], "planner": [...]}``);
            each combination is one group of the report.
        seeds: one trial per seed in every group.
        out_dir: ``trials.jsonl`` goes here.
        backend: where the trials run.
        progress: show a progress bar on stderr.

    Returns:
        JSON-ready report: ``rows`` (one per trial: the group's values, the seed and the
        outcome), ``groups`` (per combination the success rate's mean and 95% interval over
        seeds), ``success_rate`` (the same for the only group, when there is one), the trial
        counts and costs.
    """
    functions = {"follow": follow_trial, "eval": eval_trial, "run": run_trial}
    function = functions[kind]
    names = list(axes)
    combinations: list[dict[str, Any]] = [{}]
    for name in names:
        combinations = [{**c, name: value} for c in combinations for value in axes[name]]
    base = {**base, "threads": backend.cpus_per_trial}
    trials = [
        Trial(
            f"{__name__}:{function.__name__}",
            {**base, **group, "seed": seed},
            name=f"{kind} {' '.join(f'{k}={v}' for k, v in group.items())} seed={seed}",
        )
        for group in combinations
        for seed in seeds
    ]
    started = time.perf_counter()
    results, ran = run_trials(trials, out_dir, backend, progress)
    rows = [
        {**{name: trial.kwargs[name] for name in names}, "seed": trial.kwargs["seed"],
         **result["row"]}
        for trial, result in zip(trials, results, strict=True)
    ]  # fmt: skip
    groups = []
    for group in combinations:
        values = [row["success_rate"] for row in rows if all(row[k] == v for k, v in group.items())]
        groups.append({**group, "success_rate": mean_interval(values)})
    seconds = [result["seconds"] for result in results]
    return {
        "command": kind,
        **{k: v for k, v in base.items() if k != "threads"},
        "seeds": seeds,
        "backend": backend.backend,
        "address": backend.address,
        "cpus_per_trial": backend.cpus_per_trial,
        "rows": rows,
        "groups": groups,
        "success_rate": groups[0]["success_rate"] if len(groups) == 1 else None,
        "trials": len(trials),
        "trials_run": ran,
        "trials_resumed": len(trials) - ran,
        "trial_seconds_mean": float(np.mean(seconds)),
        "trial_seconds_total": float(np.sum(seconds)),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "results": str(out_dir / RESULTS_FILE),
    }

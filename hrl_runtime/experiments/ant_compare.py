"""Is planning over DADS skills worth it on Ant? ``hrl compare ant``.

For every seed the same random goals (Ant-v5: 3-8 m from the start, each attempted from a
reset, success within 1.0 m, a fall fails the goal), as ``hrl follow --random-goals N --seed S``
samples them, are followed by three methods:

- ``dads-mppi``: the DADS skills with latent MPPI at its default horizon (``MPPIConfig``);
- ``dads-mppi-t1``: the same skills and planner with horizon T=1, a greedy skill choice that
  scores one skill step ahead;
- ``gcsac``: a goal-conditioned SAC policy trained on the dense distance reward with the
  DADS run's step budget (``hrl train gcsac``), driven by the goal sequence (its command is the
  goal).

The rows (per seed and method) give the goals reached, the success rate, the falls, the mean
normalized distance (mean distance over an attempt divided by the starting distance, DADS's
metric) and the planner's p99 latency; the table gives their means over the seeds.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.errors import IncompatibleError
from hrl_runtime.experiments.follow import FollowConfig, follow_goals

logger = logging.getLogger(__name__)

METHODS = ("dads-mppi", "dads-mppi-t1", "gcsac")
"""The methods compared, in table order."""
ROW_FIELDS = (
    "method",
    "label",
    "skill",
    "planner",
    "horizon",
    "seed",
    "goals",
    "reached",
    "success_rate",
    "falls",
    "mean_normalized_distance",
    "planner_p99_ms",
    "control_p99_ms",
    "deadline_misses",
    "faults",
)
"""The CSV columns of a run (the JSON rows also list the goals)."""


@dataclass(frozen=True)
class AntCompareConfig:
    """What ``hrl compare ant`` runs."""

    skill: str = "dads-ant"
    """The DADS skill package (name or path) that latent MPPI plans over."""
    baseline: str = "gcsac-ant"
    """The goal-commanded baseline package (``hrl train gcsac``)."""
    env_id: str = "Ant-v5"
    """The environment."""
    seeds: tuple[int, ...] = (1, 2, 3)
    """Seeds of the goals, the resets and the planner (one run per method and seed)."""
    goals: int = 10
    """Random goals per seed."""
    steps_per_goal: int | None = None
    """Control steps per goal (None: the environment's episode length, as ``hrl follow``)."""
    horizon: int | None = None
    """MPPI horizon of ``dads-mppi`` (None: ``MPPIConfig``'s default, as ``hrl follow``)."""
    asynchronous: bool = True
    """The runtime's asynchronous loop, as ``hrl follow`` runs (False: the synchronous loop,
    deterministic and not paced to the wall clock)."""


def method_plan(method: str, config: AntCompareConfig) -> tuple[str, str, int | None, str]:
    """``(skill reference, planner, MPPI horizon or None, label)`` of ``method``."""
    from planners.mppi import MPPIConfig

    horizon = config.horizon or MPPIConfig().horizon
    if method == "dads-mppi":
        return config.skill, "mppi", horizon, f"DADS + latent MPPI (T={horizon})"
    if method == "dads-mppi-t1":
        return config.skill, "mppi", 1, "DADS + latent MPPI (T=1, greedy)"
    if method == "gcsac":
        return config.baseline, "sequence", None, "goal-conditioned SAC (dense reward)"
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def _make_env(config: AntCompareConfig) -> tuple[Any, tuple[int, int], Any, int]:
    """The plant (time limit for every goal), its x-y entries, goal space and per-goal steps."""
    import envs

    steps = config.steps_per_goal or envs.episode_steps(config.env_id) or 1000
    env = envs.make_env(config.env_id, max_episode_steps=steps * config.goals + 1)
    xy, space = envs.xy_indices(env), envs.goal_space(env)
    if xy is None or space is None:
        env.close()
        raise IncompatibleError(
            f"{config.env_id} has no x-y position or goal space; hrl compare ant needs both"
        )
    return env, xy, space, steps


def _follower(planner: str, skill: Any, goals: np.ndarray, xy, radius, steps, seed, horizon):
    from planners import SequenceConfig, build_goal_follower
    from planners.mppi import MPPIConfig

    mppi = replace(MPPIConfig(seed=seed), horizon=horizon) if horizon is not None else None
    return build_goal_follower(
        planner, skill, goals, xy, SequenceConfig(radius, steps), seed=seed, mppi=mppi
    )


def check_methods(config: AntCompareConfig, skills: dict[str, Any]) -> None:
    """Builds every method's follower once (on a dummy goal) and checks every skill against
    the environment, so that a mismatch is refused before any run.

    Raises:
        IncompatibleError: a skill does not fit its planner or the environment.
    """
    from hrl_runtime.skill import check_compatible

    env, xy, _, steps = _make_env(config)
    try:
        for method in METHODS:
            reference, planner, horizon, _ = method_plan(method, config)
            skill = skills[reference]
            check_compatible(skill, env, config.env_id)
            _follower(planner, skill, np.zeros((1, 2)), xy, 1.0, steps, 0, horizon)
    finally:
        env.close()


def run_method(method: str, skill: Any, config: AntCompareConfig, seed: int) -> dict[str, Any]:
    """One follow run of ``method`` on the goals of ``seed``: its row."""
    import envs

    reference, planner, horizon, label = method_plan(method, config)
    env, xy, space, steps = _make_env(config)
    goals = space.sample(np.random.default_rng(seed), config.goals)  # as `hrl follow` samples
    radius = envs.success_radius(config.env_id)

    def make_high_level(part: np.ndarray):
        return _follower(planner, skill, part, xy, radius, steps, seed, horizon)

    try:
        report = follow_goals(
            skill,
            make_high_level(goals),
            env,
            env_id=config.env_id,
            planner=planner,
            goals=goals,
            xy_indices=xy,
            config=FollowConfig(
                success_radius=radius,
                steps_per_goal=steps,
                asynchronous=config.asynchronous,
                seed=seed,
                reset_each_goal=space.start_distance is not None,
            ),
            control_period_s=float(env.unwrapped.dt),
            make_high_level=make_high_level,
        )
    finally:
        env.close()
    payload = report.to_json()
    return {
        "method": method,
        "label": label,
        "skill": reference,
        "planner": planner,
        "horizon": horizon,
        "seed": seed,
        "goals": len(goals),
        "reached": sum(bool(g["reached"]) for g in payload["goals"]),
        "success_rate": payload["success_rate"],
        "falls": payload["falls"],
        "mean_normalized_distance": payload["mean_normalized_distance"],
        "planner_p99_ms": payload["planner_latency_ms"]["p99"],
        "control_p99_ms": payload["control_latency_ms"]["p99"],
        "deadline_misses": payload["deadline_misses"],
        "faults": payload["faults"],
        "success_radius": payload["success_radius"],
        "steps_per_goal": payload["steps_per_goal"],
        "goal_xy": [g["goal"] for g in payload["goals"]],
    }


def compare_ant(config: AntCompareConfig, progress: bool = False) -> list[dict[str, Any]]:
    """Runs every method on the goals of every seed, one run at a time.

    Returns:
        One row per (method, seed), in table order.

    Raises:
        HrlError: a skill cannot be loaded or does not fit its planner or the environment
            (before any run).
    """
    from hrl_runtime.registry import load_skill

    skills = {ref: load_skill(ref) for ref in dict.fromkeys((config.skill, config.baseline))}
    check_methods(config, skills)
    rows = []
    for method in METHODS:
        reference = method_plan(method, config)[0]
        for seed in config.seeds:
            row = run_method(method, skills[reference], config, seed)
            logger.info("%s seed %d: %d/%d, falls %d", method, seed, row["reached"],
                        row["goals"], row["falls"])  # fmt: skip
            if progress:
                print(
                    f"{method:>13} seed {seed}: {row['reached']}/{row['goals']} reached, "
                    f"{row['falls']} falls",
                    flush=True,
                    file=sys.stderr,
                )
            rows.append(row)
    return rows


def _mean(values: list[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method, over its seeds: goals reached in total, mean and std of the success rate,
    falls in total, mean normalized distance, mean planner p99 and deadline misses/faults in
    total."""
    table = []
    for method in dict.fromkeys(row["method"] for row in rows):
        group = [r for r in rows if r["method"] == method]
        rates = [r["success_rate"] for r in group]
        table.append(
            {
                "method": method,
                "label": group[0]["label"],
                "seeds": len(group),
                "reached": sum(r["reached"] for r in group),
                "goals": sum(r["goals"] for r in group),
                "success_rate": float(np.mean(rates)),
                "success_rate_std": float(np.std(rates)),
                "falls": sum(r["falls"] for r in group),
                "mean_normalized_distance": _mean([r["mean_normalized_distance"] for r in group]),
                "planner_p99_ms": _mean([r["planner_p99_ms"] for r in group]),
                "deadline_misses": sum(r["deadline_misses"] for r in group),
                "faults": sum(r["faults"] for r in group),
            }
        )
    return table


def markdown_table(table: list[dict[str, Any]]) -> str:
    """The summary (means over seeds) as a markdown table."""

    def number(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "| method | seeds | goals reached | success rate (mean ± std over seeds) | falls | "
        "mean normalized distance | planner p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        lines.append(
            f"| {row['label']} | {row['seeds']} | {row['reached']}/{row['goals']} | "
            f"{row['success_rate']:.0%} ± {row['success_rate_std']:.0%} | {row['falls']} | "
            f"{number(row['mean_normalized_distance'])} | "
            f"{number(row['planner_p99_ms'], 3)} |"
        )
    return "\n".join(lines)


def write_results(
    config: AntCompareConfig, rows: list[dict[str, Any]], out: Path
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Writes ``ant_compare.csv`` (a row per seed and method), ``ant_compare.md`` (the means
    over seeds) and ``ant_compare.json`` (config, table and rows with their goals) into ``out``.

    Returns:
        The summary table and the files written, by format.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = summarize(rows)
    files = {
        "csv": str(out / "ant_compare.csv"),
        "markdown": str(out / "ant_compare.md"),
        "json": str(out / "ant_compare.json"),
    }
    with open(files["csv"], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROW_FIELDS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    Path(files["markdown"]).write_text(markdown_table(table) + "\n")
    payload = {"config": asdict(config), "table": table, "runs": rows}
    Path(files["json"]).write_text(json.dumps(payload) + "\n")
    return table, files

"""Does online adaptation keep planning working on a changed body? ``hrl compare adapt``.

On bodies not seen in meta-training, latent MPPI follows random goals with four dynamics:

- ``plain``: the skill's own dynamics (DADS), unchanged;
- ``plain+finetune``: the same dynamics fine-tuned online with the meta skill's adaptation
  settings (M transitions, inner steps, inner learning rate, and accumulating or not), from
  its own weights as the meta skill is from its meta-parameters;
- ``meta``: the meta-learned dynamics without adaptation;
- ``meta+adapt``: the meta-learned dynamics adapted at every replanning (GrBAL).

Every condition sees the same bodies, goals and seeds, and plans with the same latent MPPI
settings: those the meta skill's package recommends (``Skill.planner_settings``), so that only
the dynamics differ. The table gives the share of goals
reached and the mean normalized distance (final distance over starting distance) of the goals
attempted: a run the safety monitor stops (stale plans on a loaded machine) leaves its remaining
goals unattempted, counted as not reached and left out of the distance.
"""

from __future__ import annotations

import csv
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.experiments.follow import FollowConfig, follow_goals

logger = logging.getLogger(__name__)

CONDITIONS = ("plain", "plain+finetune", "meta", "meta+adapt")
"""The four dynamics compared, in table order."""


@dataclass(frozen=True)
class AdaptCompareConfig:
    """What ``hrl compare adapt`` runs."""

    plain_skill: str | None = None
    """The skill with plain dynamics; None: the skill the meta skill was trained from (its
    manifest's ``training.config.skill``), so that only the dynamics differ."""
    meta_skill: str = "dads-pointmass-meta"
    """The skill with meta-learned dynamics (``hrl train adapt``)."""
    env_id: str = "hrl/PointArena-v0"
    """The environment."""
    bodies: tuple[str, ...] = ("gain=0.4,mirror=x", "gain=0.4,mirror=y", "gain=0.4,mass=2.5")
    """Bodies as ``--perturb`` texts (gain 0.4 lies in the training distribution's held-out
    band, mass 2.5 beyond its range)."""
    goals: int = 10
    """Random goals per body and seed."""
    seeds: tuple[int, ...] = (1000,)
    """Seeds of goals, resets and planners."""
    asynchronous: bool = True
    """The runtime's asynchronous loop (False: the synchronous loop, deterministic)."""


def base_skill_ref(meta_ref: str) -> str:
    """The skill ``hrl train adapt`` made ``meta_ref`` from, as its manifest records it.

    Raises:
        ConfigError: the manifest does not name one.
    """
    from hrl_runtime.errors import ConfigError
    from hrl_runtime.manifest import read_manifest
    from hrl_runtime.registry import MANIFEST, SkillRegistry

    path = Path(meta_ref)
    if (path / MANIFEST).is_file():
        manifest = read_manifest(path)
    else:
        manifest = SkillRegistry().resolve(meta_ref).manifest
    base = (manifest.get("training") or {}).get("config", {}).get("skill")
    if not isinstance(base, str) or not base:
        raise ConfigError(
            f"the manifest of {meta_ref!r} does not name the skill it was trained from "
            "(training.config.skill); pass --plain-skill NAME"
        )
    return base


def run_condition(
    condition: str,
    skill: Any,
    body: Any,
    config: AdaptCompareConfig,
    seed: int,
    settings: Any,
    mppi_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One follow run of ``condition`` on ``body``: its JSON row (``mppi_settings``: latent
    MPPI fields over the defaults, the same for every condition)."""
    import envs
    from envs.perturb import PerturbedBody
    from planners import MPPIConfig, SequenceConfig, build_goal_follower
    from skill_library.meta.skill import adapter_for

    steps = envs.episode_steps(config.env_id) or 1000
    env = PerturbedBody(
        envs.make_env(config.env_id, max_episode_steps=steps * config.goals + 1), body
    )
    xy, space = envs.xy_indices(env), envs.goal_space(env)
    goals = space.sample(np.random.default_rng(seed), config.goals)
    radius = envs.success_radius(config.env_id)
    adapter = adapter_for(skill, settings) if condition.endswith(("finetune", "adapt")) else None
    mppi = MPPIConfig(**{**(mppi_settings or {}), "seed": seed})

    def make_high_level(part: np.ndarray):
        sequence = SequenceConfig(radius, steps)
        follower = build_goal_follower("mppi", skill, part, xy, sequence, seed=seed, mppi=mppi)
        if adapter is not None:
            follower.delegate.use_adapter(adapter)
        return follower

    report = follow_goals(
        skill,
        make_high_level(goals),
        env,
        env_id=config.env_id,
        planner="mppi",
        goals=goals,
        xy_indices=xy,
        config=FollowConfig(
            success_radius=radius,
            steps_per_goal=steps,
            asynchronous=config.asynchronous,
            seed=seed,
        ),
        control_period_s=float(env.unwrapped.dt),
        make_high_level=make_high_level,
    )
    env.close()
    payload = report.to_json()
    adaptation = adapter.report() if adapter is not None else None
    return {
        "condition": condition,
        "body": body.label(),
        "seed": seed,
        "goals": len(goals),
        "reached": sum(bool(g["reached"]) for g in payload["goals"]),
        "success_rate": payload["success_rate"],
        "mean_normalized_distance": payload["mean_normalized_distance"],
        "deadline_misses": payload["deadline_misses"],
        "stop_reason": payload["stop_reason"],
        "adapt_p99_ms": adaptation["adapt_ms"]["p99"] if adaptation else None,
        "heldout_error_meta": adaptation["heldout_error"]["meta"] if adaptation else None,
        "heldout_error_adapted": adaptation["heldout_error"]["adapted"] if adaptation else None,
    }


def compare_adaptation(config: AdaptCompareConfig, progress: bool = False) -> list[dict[str, Any]]:
    """Runs every condition on every body and seed.

    Returns:
        One row per (condition, body, seed), in table order.

    Raises:
        ConfigError: a body text is malformed or does not fit the env.
        IncompatibleError: a skill has no dynamics the kernels run.
    """
    from envs.perturb import Perturbation
    from hrl_runtime.registry import load_skill
    from skill_library.meta.skill import MetaDADSSkill

    plain_ref = config.plain_skill or base_skill_ref(config.meta_skill)
    plain, meta = load_skill(plain_ref), load_skill(config.meta_skill)
    settings = meta.adaptation if isinstance(meta, MetaDADSSkill) else None
    mppi_settings = meta.planner_settings("mppi")
    bodies = [Perturbation.parse(text) for text in config.bodies]
    rows = []
    for body in bodies:
        for condition in CONDITIONS:
            skill = plain if condition.startswith("plain") else meta
            for seed in config.seeds:
                row = run_condition(condition, skill, body, config, seed, settings, mppi_settings)
                logger.info("%s on %s, seed %d: %d/%d", condition, row["body"], seed,
                            row["reached"], row["goals"])  # fmt: skip
                if progress:
                    print(
                        f"{row['body']:>24} {condition:>15} seed {seed}: "
                        f"{row['reached']}/{row['goals']}",
                        flush=True,
                        file=sys.stderr,
                    )
                rows.append(row)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per body and condition: goals reached over all seeds and the mean normalized distance."""
    table = []
    keys = []
    for row in rows:
        key = (row["body"], row["condition"])
        if key not in keys:
            keys.append(key)
    for body, condition in keys:
        group = [r for r in rows if r["body"] == body and r["condition"] == condition]
        distances = [
            r["mean_normalized_distance"]
            for r in group
            if r["mean_normalized_distance"] is not None
        ]
        reached, goals = sum(r["reached"] for r in group), sum(r["goals"] for r in group)
        table.append(
            {
                "body": body,
                "condition": condition,
                "reached": reached,
                "goals": goals,
                "success_rate": reached / goals if goals else None,
                "mean_normalized_distance": float(np.mean(distances)) if distances else None,
                "deadline_misses": sum(r["deadline_misses"] for r in group),
                "safe_stops": sum(r.get("stop_reason") == "safe_stop" for r in group),
            }
        )
    return table


def write_table(table: list[dict[str, Any]], path: Path) -> Path:
    """Writes the summary as CSV (``.csv``) or a markdown table (any other suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
        return path
    path.write_text(markdown_table(table) + "\n")
    return path


def markdown_table(table: list[dict[str, Any]]) -> str:
    """The summary as a markdown table."""
    lines = [
        "| body | dynamics | goals reached | mean normalized distance | deadline misses "
        "| runs ended by a safe stop |",
        "|---|---|---|---|---|---|",
    ]
    for row in table:
        distance = row["mean_normalized_distance"]
        lines.append(
            f"| {row['body']} | {row['condition']} | {row['reached']}/{row['goals']} | "
            f"{'-' if distance is None else f'{distance:.2f}'} | {row['deadline_misses']} | "
            f"{row.get('safe_stops', 0)} |"
        )
    return "\n".join(lines)

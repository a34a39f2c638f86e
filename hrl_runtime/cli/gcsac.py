"""``hrl train gcsac`` (the goal-conditioned SAC baseline) and ``hrl compare ant`` (DADS with
latent MPPI at the default horizon and at T=1 against that baseline, on the same goals)."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

from hrl_runtime import checks
from hrl_runtime.cli.common import (
    GOALS,
    SEED,
    STEPS,
    TRAIN_STEPS,
    WithJson,
    add_package_flags,
    add_trainer_env_flags,
    check_package_target,
    command_line,
    count_type,
    emit,
    emit_package,
    json_default,
    make_env,
    ms,
    show_progress,
    trainer_env_values,
)
from hrl_runtime.errors import ConfigError
from skill_library.gcsac.config import GCSACConfig

logger = logging.getLogger(__name__)

MAX_SEEDS = 100
"""Most seeds one comparison runs."""
MAX_HORIZON = 1000
"""Longest MPPI horizon ``hrl compare ant --horizon`` accepts."""


def steps_of(ref: str) -> int:
    """The policy steps the package ``ref`` (name, name@version or directory) trained, from
    its manifest's ``metrics.steps`` (DADS records them), so a baseline matches its budget.

    Raises:
        HrlError: no such package, or its manifest records no step count.
    """
    from hrl_runtime.package_schema import MANIFEST
    from hrl_runtime.registry import SkillRegistry, is_explicit_path

    path = Path(ref).expanduser() if is_explicit_path(ref) else SkillRegistry().resolve(ref).path
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"--steps-of {checks.shorten(ref)}: cannot read its manifest ({error})"
        ) from None
    steps = manifest.get("metrics", {}).get("steps") if isinstance(manifest, dict) else None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(
            f"--steps-of {checks.shorten(ref)}: its manifest records no metrics.steps; "
            "give --steps N instead"
        )
    return checks.count(steps, "--steps-of", checks.MAX_TRAIN_STEPS)


def cmd_train_gcsac(args: argparse.Namespace) -> int:
    if args.steps is not None and args.steps_of is not None:
        raise ConfigError("give --steps N or --steps-of PACKAGE, not both")
    defaults = GCSACConfig()
    given = {
        "env_id": args.env,
        "steps": args.steps if args.steps_of is None else steps_of(args.steps_of),
        **trainer_env_values(args),
    }
    config = replace(defaults, seed=args.seed, **{k: v for k, v in given.items() if v is not None})
    if config.env_workers >= config.num_envs:
        config = replace(config, env_workers=config.num_envs - 1)
    config.validate()
    out = check_package_target(args)  # --out, --name, --version: before any training
    env = make_env(config.env_id, max_episode_steps=10)  # refuse unknown ids before training
    import envs

    space = envs.goal_space(env)
    env.close()
    if space is None:
        raise ConfigError(
            f"--env {config.env_id} has no x-y goal space to sample goals from; use Ant-v5 or "
            "another environment `hrl envs` lists with goals"
        )
    from skill_library.gcsac.train import GCSACTrainer  # torch: loaded only when training

    trainer = GCSACTrainer(config, out, command=command_line(args))
    path = trainer.train(
        resume=args.resume, progress=show_progress(), name=args.name, version=args.version
    )

    def describe(metrics: dict) -> str:
        rate = metrics.get("eval_success_rate")
        evaluation = (
            f", evaluation: {rate:.0%} of {metrics['eval_episodes']} goals reached, "
            f"falls {metrics['eval_fall_rate']:.0%}"
            if rate is not None
            else ""
        )
        return f"{metrics['steps']} steps in {metrics['iterations']} iterations{evaluation}"

    return emit_package(args, path, describe, steps_requested=config.steps)


def add_train_commands(algorithms: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl train gcsac``."""
    defaults = GCSACConfig()
    gcsac = with_json(
        algorithms.add_parser("gcsac", help="goal-conditioned SAC baseline (dense distance reward)")
    )
    gcsac.add_argument("--env", default=None, help=f"environment id (default {defaults.env_id})")
    gcsac.add_argument(
        "--steps",
        type=TRAIN_STEPS,
        default=None,
        help=f"policy steps in total (default {defaults.steps:,}, the DADS Ant preset's); the "
        f"last iteration of --num-envs episodes (up to {defaults.episode_length} steps each) "
        "completes",
    )
    gcsac.add_argument(
        "--steps-of",
        default=None,
        metavar="PACKAGE",
        help="train as many policy steps as PACKAGE did (its manifest's metrics.steps), e.g. "
        "--steps-of dads-ant",
    )
    add_package_flags(gcsac, "gcsac-skill")
    gcsac.add_argument("--seed", type=SEED, default=defaults.seed)
    add_trainer_env_flags(gcsac, str(defaults.num_envs))
    gcsac.set_defaults(func=cmd_train_gcsac)


def parse_seeds(text: str) -> tuple[int, ...]:
    """``--seeds 1,2,3`` as distinct seeds.

    Raises:
        ConfigError: an entry is not a seed, a seed repeats, or there are too many.
    """
    parts = [part.strip() for part in str(text).split(",")]
    if not parts or len(parts) > MAX_SEEDS or any(not part for part in parts):
        raise ConfigError(
            f"--seeds {checks.shorten(text)}: give 1..{MAX_SEEDS} seeds joined by commas, "
            "for example 1,2,3"
        )
    seeds = tuple(checks.seed(part, "--seeds") for part in parts)
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {checks.shorten(text)}: a seed repeats; give distinct seeds")
    return seeds


def cmd_compare_ant(args: argparse.Namespace) -> int:
    from hrl_runtime.experiments.ant_compare import (
        AntCompareConfig,
        compare_ant,
        markdown_table,
        write_results,
    )

    seeds = parse_seeds(args.seeds)
    out = checks.output_dir(args.out, "--out", may_exist=True)  # before any work
    config = AntCompareConfig(
        skill=args.skill,
        baseline=args.baseline,
        env_id=args.env,
        seeds=seeds,
        goals=args.random_goals,
        steps_per_goal=args.max_steps,
        horizon=args.horizon,
        asynchronous=not args.sync,
    )
    make_env(config.env_id, max_episode_steps=10).close()
    import envs

    steps = config.steps_per_goal or envs.episode_steps(config.env_id) or 1000
    if steps * config.goals > checks.MAX_STEPS:
        raise ConfigError(
            f"{config.goals} goals of {steps} control steps each allow {steps * config.goals:,} "
            f"steps, more than the {checks.MAX_STEPS:,} of one run; lower --max-steps or "
            "--random-goals"
        )
    rows = compare_ant(config, progress=show_progress())
    table, files = write_results(config, rows, out)
    payload = {"config": config.__dict__, "table": table, "runs": rows, "files": files}
    lines = [markdown_table(table), ""]
    for row in rows:
        lines.append(
            f"{row['method']:>13} seed {row['seed']}: {row['reached']}/{row['goals']} reached, "
            f"{row['falls']} falls, planner p99 {ms(row['planner_p99_ms'])} ms"
        )
    lines.append(f"wrote {files['csv']}, {files['markdown']}, {files['json']}")
    emit(args, json.loads(json.dumps(payload, default=json_default)), "\n".join(lines))
    return 0


def add_compare_commands(targets: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl compare ant``."""
    compare = with_json(
        targets.add_parser(
            "ant",
            help="DADS + latent MPPI (default horizon and T=1) vs goal-conditioned SAC on Ant",
        )
    )
    compare.add_argument("--skill", default="dads-ant", help="DADS skill (name or path)")
    compare.add_argument(
        "--baseline", default="gcsac-ant", help="goal-commanded baseline from `hrl train gcsac`"
    )
    compare.add_argument("--env", default="Ant-v5", help="environment id (default Ant-v5)")
    compare.add_argument(
        "--seeds", default="1,2,3", help="seeds of goals, resets and planners (default 1,2,3)"
    )
    compare.add_argument(
        "--random-goals", type=GOALS, default=10, help="random goals per seed (default 10)"
    )
    compare.add_argument(
        "--max-steps",
        type=STEPS,
        default=None,
        help="control steps per goal (default: the env's episode length, 1000 on Ant-v5)",
    )
    compare.add_argument(
        "--horizon",
        type=count_type(MAX_HORIZON),
        default=None,
        help="MPPI horizon of the default-horizon method (default: MPPIConfig's, as hrl follow)",
    )
    compare.add_argument(
        "--sync",
        action="store_true",
        help="the synchronous loop (deterministic, not paced); by default the asynchronous "
        "real-time loop of hrl follow",
    )
    compare.add_argument(
        "--out",
        default="runs/ant_compare",
        help="directory for ant_compare.csv, .md and .json (replaced)",
    )
    compare.set_defaults(func=cmd_compare_ant)

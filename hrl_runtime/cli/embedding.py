"""``hrl train embedding``: a skill embedding space (Hausman et al. 2018) from the command line."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, replace

from hrl_runtime.cli.common import (
    SEED,
    TRAIN_STEPS,
    WithJson,
    add_package_flags,
    add_trainer_env_flags,
    check_package_target,
    command_line,
    count_type,
    emit_package,
    make_env,
    positive_type,
    show_progress,
    trainer_env_values,
)
from hrl_runtime.errors import ConfigError
from skill_library.embedding.config import EmbeddingConfig

MAX_TASKS = 64
"""Most training tasks the command line accepts."""
MAX_LATENT_DIM = 16
"""Largest embedding size dz the command line accepts."""


def build_config(args: argparse.Namespace) -> EmbeddingConfig:
    """The defaults with every option given on the command line in their place."""
    given = {
        "env_id": args.env,
        "tasks": args.tasks,
        "latent_dim": args.latent_dim,
        "steps": args.steps,
        "embedding_repulsion_weight": args.repulsion,
        **trainer_env_values(args),
    }
    config = replace(
        EmbeddingConfig(), seed=args.seed, **{k: v for k, v in given.items() if v is not None}
    )
    if config.env_workers >= config.num_envs:
        config = replace(config, env_workers=config.num_envs - 1)
    config.validate()
    return config


def cmd_train_embedding(args: argparse.Namespace) -> int:
    config = build_config(args)
    out = check_package_target(args)  # --out, --name, --version: before any training
    env = make_env(config.env_id, max_episode_steps=10)  # refuse unknown ids before training
    tasks = int(getattr(env.unwrapped, "num_tasks", 0))
    env.close()
    if tasks < config.tasks:
        raise ConfigError(
            f"--tasks {config.tasks}: {config.env_id} has "
            + (f"{tasks} tasks; pick at most that many" if tasks else "no tasks (no num_tasks); ")
            + ("" if tasks else "use a multi-task env such as hrl/ArmReach-v0")
        )
    from skill_library.embedding.train import EmbeddingTrainer  # torch: loaded only to train

    trainer = EmbeddingTrainer(config, out, command=command_line(args))
    path = trainer.train(
        resume=args.resume, progress=show_progress(), name=args.name, version=args.version
    )
    per_iteration = config.num_envs * config.episode_length

    def describe(metrics: dict) -> str:
        return (
            f"{metrics['steps']} control steps, tasks done at their embedding means "
            f"{metrics['task_success_rate']:.0%} (mean final distance "
            f"{metrics['task_final_distance_mean']:.3f} m), skill-dynamics held-out error "
            f"{metrics['dynamics_test_error_m']:.3f} m"
        )

    return emit_package(
        args,
        path,
        describe,
        plot=str(path / "embedding.png"),
        steps_requested=config.steps,
        steps_per_iteration=per_iteration,
        iterations_requested=math.ceil(config.steps / per_iteration),
    )


def cmd_embedding_transfer(args: argparse.Namespace) -> int:
    from hrl_runtime import checks
    from hrl_runtime.cli.common import emit
    from hrl_runtime.registry import load_skill
    from skill_library.embedding.transfer import TransferConfig, compare

    out = checks.output_dir(args.out, "--out", force=args.force, resume=False)
    skill = load_skill(args.skill)
    if skill.kind != "embedding":
        raise ConfigError(
            f"--skill {args.skill} is of kind {skill.kind!r}; transfer by control in the "
            "embedding space needs an 'embedding' skill such as embed-arm"
        )
    config = TransferConfig(steps=args.steps, seed=args.seed)
    given = {
        "eval_every": args.eval_every,
        "high_level_hold": args.high_level_hold,
        "high_level_updates": args.high_level_updates,
    }
    config = replace(config, **{k: v for k, v in given.items() if v is not None})
    result = compare(skill, config, args.seeds, out)
    table = result["final_success_rate"]
    lines = [f"{'task/method':<24} final success rate (mean of {args.seeds} seeds)"]
    lines += [f"{key:<24} {value:.2f}" for key, value in table.items()]
    lines.append(f"wrote {result['csv']} and {result['plot']}")
    record = {**result, "steps": config.steps, "seeds": args.seeds, "config": asdict(config)}
    emit(args, record, "\n".join(lines))
    return 0


def add_train_commands(algorithms: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl train embedding``."""
    defaults = EmbeddingConfig()
    sub = with_json(
        algorithms.add_parser(
            "embedding", help="skill embedding space of many tasks (Hausman et al. 2018)"
        )
    )
    sub.add_argument(
        "--env", default=None, help=f"multi-task environment id (default {defaults.env_id})"
    )
    sub.add_argument(
        "--tasks",
        type=count_type(MAX_TASKS),
        default=None,
        help=f"training tasks 0..N-1 (default {defaults.tasks}; at most the env's)",
    )
    sub.add_argument(
        "--latent-dim",
        type=count_type(MAX_LATENT_DIM),
        default=None,
        help=f"embedding size dz (1..{MAX_LATENT_DIM}; default {defaults.latent_dim})",
    )
    sub.add_argument(
        "--steps",
        type=TRAIN_STEPS,
        default=None,
        help=f"control steps collected (default {defaults.steps}), in whole iterations of "
        f"--num-envs x {defaults.episode_length}-step episodes",
    )
    sub.add_argument(
        "--repulsion",
        type=positive_type(100.0),
        default=None,
        help="weight of a repulsion between the task embedding means (off by default; "
        "embed-arm 3.0.0 was trained with 1.0)",
    )
    add_package_flags(sub, "embed-skills")
    sub.add_argument("--seed", type=SEED, default=defaults.seed)
    add_trainer_env_flags(sub, str(defaults.num_envs))
    sub.set_defaults(func=cmd_train_embedding)

    transfer = with_json(
        algorithms.add_parser(
            "embedding-transfer",
            help="learn new arm tasks by SAC over the embedding z vs SAC on raw torques",
        )
    )
    transfer.add_argument("--skill", default="embed-arm", help="an 'embedding' skill package")
    transfer.add_argument(
        "--steps", type=TRAIN_STEPS, default=30_000, help="control steps per run (default 30000)"
    )
    transfer.add_argument(
        "--seeds", type=count_type(10), default=3, help="seeds per task and method (default 3)"
    )
    transfer.add_argument(
        "--eval-every", type=TRAIN_STEPS, default=None, help="control steps between evaluations"
    )
    transfer.add_argument(
        "--high-level-hold",
        type=count_type(1000),
        default=None,
        help="control steps the high level holds each z (default 25)",
    )
    transfer.add_argument(
        "--high-level-updates",
        type=count_type(1000),
        default=None,
        help="SAC updates of the high level per decision (default 4)",
    )
    transfer.add_argument("--seed", type=SEED, default=0)
    transfer.add_argument("--out", required=True, help="directory for transfer.csv/.png")
    transfer.add_argument("--force", action="store_true", help="write into a non-empty --out")
    transfer.set_defaults(func=cmd_embedding_transfer)

"""``hrl train dads``: DADS skill discovery from the command line."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from hrl_runtime.cli.common import (
    WithJson,
    command_line,
    emit_package,
    make_env,
    show_progress,
)
from skill_library.dads.config import DADSConfig


def cmd_train_dads(args: argparse.Namespace) -> int:
    from skill_library.dads.train import DADSTrainer  # torch: loaded only when training

    config = replace(
        DADSConfig(),
        env_id=args.env,
        latent_dim=args.latent_dim,
        steps=args.steps,
        seed=args.seed,
        num_envs=args.num_envs,
        off_policy=args.off_policy,
    )
    if args.all_dims:
        config = replace(config, dynamics_dims=None, hide_dynamics_dims=False)
    make_env(args.env, max_episode_steps=10).close()  # refuse unknown ids before training
    command = command_line(args)
    trainer = DADSTrainer(config, Path(args.out), command=command)
    path = trainer.train(resume=args.resume, progress=show_progress(), name=args.name)
    return emit_package(
        args,
        path,
        lambda m: (
            f"{m['steps']} steps, dynamics log-likelihood "
            f"{m['dynamics_log_likelihood']:.3f}, intrinsic reward {m['intrinsic_reward']:.3f}, "
            f"skill distinctness {m['skill_distinctness']:.1f}"
        ),
        plot=str(path / "skills.png"),
    )


def add_train_commands(algorithms: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl train dads``."""
    defaults = DADSConfig()
    dads = with_json(algorithms.add_parser("dads", help="DADS skill discovery"))
    dads.add_argument("--env", default=defaults.env_id, help="environment id")
    dads.add_argument(
        "--latent-dim", type=int, default=defaults.latent_dim, help="skill dimension dz"
    )
    dads.add_argument("--steps", type=int, default=defaults.steps, help="policy steps in total")
    dads.add_argument("--out", required=True, help="package directory (checkpoints inside)")
    dads.add_argument("--seed", type=int, default=defaults.seed)
    dads.add_argument("--name", default="dads-skills", help="package name in the registry")
    dads.add_argument(
        "--num-envs", type=int, default=defaults.num_envs, help="environments side by side"
    )
    dads.add_argument("--off-policy", action="store_true", help="off-DADS replay")
    dads.add_argument("--all-dims", action="store_true", help="dynamics over every obs entry")
    dads.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    dads.set_defaults(func=cmd_train_dads)

"""``hrl collect``: scripted offline trajectories for SPiRL and Actionable Models."""

from __future__ import annotations

import argparse
from pathlib import Path

from hrl_runtime import checks
from hrl_runtime.cli.common import (
    EPISODES,
    SEED,
    WithJson,
    add_force_flag,
    command_line,
    count_type,
    emit,
    show_progress,
)
from hrl_runtime.cli.sweep import add_backend_flags, backend_config, trials_session
from hrl_runtime.errors import ConfigError


def cmd_collect(args: argparse.Namespace) -> int:
    import envs  # MuJoCo loads only when collecting

    out = checks.output_file(args.out, "--out", suffixes=(".h5", ".hdf5"), force=args.force)
    try:
        config = envs.CollectConfig(
            env_id=args.env,
            episodes=args.episodes,
            seed=args.seed,
            max_goal_distance_cells=args.max_goal_cells,
        )
        if args.shards == 1:
            dataset = envs.collect_dataset(
                config, progress=show_progress(), created_by=command_line(args)
            )
        else:
            from hrl_runtime.experiments.collect_shards import collect_sharded

            backend = backend_config(args)
            with trials_session(backend):
                dataset = collect_sharded(
                    config, args.shards, backend, out, show_progress(), command_line(args)
                )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    path = dataset.save(out)
    payload = {
        "path": str(path),
        "episodes": dataset.num_episodes,
        "steps": dataset.num_steps,
        "env": args.env,
        "bytes": Path(path).stat().st_size,
    }
    emit(args, payload, f"wrote {path}: {dataset.num_episodes} episodes, {dataset.num_steps} steps")
    return 0


def add_commands(commands: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl collect``."""
    collect = with_json(commands.add_parser("collect", help="record scripted offline data"))
    collect.add_argument("--env", default="hrl/PointMaze-v0")
    collect.add_argument(
        "--episodes", type=EPISODES, required=True, help=f"1..{checks.MAX_EPISODES}"
    )
    collect.add_argument("--out", required=True, help="HDF5 file to write (.h5 or .hdf5)")
    add_force_flag(collect, "the --out file")
    collect.add_argument("--seed", type=SEED, default=0)
    collect.add_argument(
        "--max-goal-cells",
        type=count_type(10_000),
        help="goals within this many cells of the start",
    )
    collect.add_argument(
        "--shards",
        type=count_type(1024),
        default=1,
        help="split the episodes into this many trials on --backend (default 1: this process); "
        "a seed and shard count give one dataset on either backend",
    )
    add_backend_flags(
        collect, "shards side by side on this machine (default: every core); with --shards >= 2"
    )
    collect.set_defaults(func=cmd_collect)

"""``hrl collect``: scripted offline trajectories for SPiRL and Actionable Models."""

from __future__ import annotations

import argparse
from pathlib import Path

from hrl_runtime.cli.common import WithJson, command_line, emit, show_progress
from hrl_runtime.errors import ConfigError


def cmd_collect(args: argparse.Namespace) -> int:
    import envs  # MuJoCo loads only when collecting

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    try:
        config = envs.CollectConfig(
            env_id=args.env,
            episodes=args.episodes,
            seed=args.seed,
            max_goal_distance_cells=args.max_goal_cells,
        )
        dataset = envs.collect_dataset(
            config, progress=show_progress(), created_by=command_line(args)
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    path = dataset.save(args.out)
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
    collect.add_argument("--episodes", type=int, required=True)
    collect.add_argument("--out", required=True, help="HDF5 file to write")
    collect.add_argument("--seed", type=int, default=0)
    collect.add_argument(
        "--max-goal-cells", type=int, help="goals within this many cells of the start"
    )
    collect.set_defaults(func=cmd_collect)

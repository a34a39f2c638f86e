"""What every command group of the ``hrl`` CLI shares: output, environments, datasets, skills."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.errors import ConfigError

WithJson = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
"""Adds ``--json`` to a sub-parser and returns it."""


def with_json(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the ``--json`` flag (print exactly one JSON object) to ``sub``."""
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    return sub


def add_loop_flags(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds ``--sync`` (plan inline, deterministic) and ``--threads N`` (planner threads)."""
    sub.add_argument(
        "--sync",
        action="store_true",
        help="plan inline on the control thread (deterministic, for tests and replays); by "
        "default the planner runs in its own thread beside a real-time control loop",
    )
    sub.add_argument(
        "--threads",
        type=int,
        help="planner threads (default: the cores inline, one fewer beside the control loop)",
    )
    return sub


def emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """Prints ``payload`` as one JSON object with ``--json``, else ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(payload, default=json_default))
    else:
        print(text)


def json_default(value: Any) -> Any:
    """JSON encoding of numpy arrays, numpy scalars and paths."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def command_line(args: argparse.Namespace) -> str:
    """The command as the user typed it (recorded in trained packages)."""
    return "hrl " + shlex.join(args.argv)


def emit_package(
    args: argparse.Namespace,
    path: Path,
    describe: Callable[[dict[str, Any]], str],
    **extra: Any,
) -> int:
    """Reports a package a trainer wrote: ``{"package", "metrics", **extra}`` with ``--json``,
    else ``wrote PATH (describe(metrics))``; returns exit status 0."""
    metrics = json.loads((Path(path) / "skill.json").read_text())["metrics"]
    payload = {"package": str(path), "metrics": metrics, **extra}
    emit(args, payload, f"wrote {path} ({describe(metrics)})")
    return 0


def show_progress() -> bool:
    """Progress bars go to stderr whenever a person watches it (a terminal), with ``--json`` too:
    stdout keeps exactly the one JSON object."""
    return sys.stderr.isatty()


def ms(value: float | None) -> str:
    """A latency in milliseconds for tables; ``-`` when there is none."""
    return "-" if value is None else f"{value:.3f}"


def make_env(env_id: str, max_episode_steps: int | None = None, render_mode: str | None = None):
    """``envs.make_env`` with an unknown id reported as a one-line input error."""
    import envs

    try:
        return envs.make_env(env_id, max_episode_steps=max_episode_steps, render_mode=render_mode)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def load_dataset(path: str, env_id: str | None = None):
    """``envs.load_dataset`` with a bad file reported as a one-line input error."""
    import envs

    try:
        return envs.load_dataset(path, env_id=env_id)
    except envs.DatasetError as error:
        raise ConfigError(str(error)) from None


def compare_targets(commands: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-parsers of ``hrl compare`` (each comparison adds its target here)."""
    compare = commands.add_parser("compare", help="side-by-side evaluations")
    return compare.add_subparsers(dest="target", required=True, metavar="TARGET")

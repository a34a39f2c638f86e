"""What every command group of the ``hrl`` CLI shares: output, environments, datasets, skills."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from hrl_runtime import checks
from hrl_runtime.errors import ConfigError

WithJson = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
"""Adds ``--json`` to a sub-parser and returns it."""

MAX_ERROR_CHARS = 900
"""Longest error line the parser prints (an echoed 50 MB argument is cut)."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``hrl follow: error: argument --seed: ...``,
    with exit status 2 and no usage dump (``--help`` shows the usage). Sub-parsers inherit the
    class through ``add_subparsers``."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        if len(line) > MAX_ERROR_CHARS:
            line = f"{line[: MAX_ERROR_CHARS - 30]}... ({len(line)} characters)"
        self.exit(2, f"{self.prog}: error: {line}\n")


# argparse ``type=`` converters: each refuses a bad value as ``argument --flag: ...``, status 2.
SEED = checks.argparse_type(checks.seed)
THREADS = checks.argparse_type(checks.count, checks.MAX_THREADS)
EPISODES = checks.argparse_type(checks.count, checks.MAX_EPISODES)
STEPS = checks.argparse_type(checks.count, checks.MAX_STEPS)
TRAIN_STEPS = checks.argparse_type(checks.count, checks.MAX_TRAIN_STEPS)
GOALS = checks.argparse_type(checks.count, checks.MAX_GOALS)


def count_type(high: int, low: int = 1) -> Callable[[str], int]:
    """An argparse ``type=`` for an integer in ``[low, high]``."""
    return checks.argparse_type(checks.count, high, low)


def positive_type(high: float) -> Callable[[str], float]:
    """An argparse ``type=`` for a finite number in ``(0, high]``."""
    return checks.argparse_type(checks.positive, high)


def add_force_flag(sub: argparse.ArgumentParser, what: str) -> argparse.ArgumentParser:
    """Adds ``--force``: replace ``what`` when it exists (refused otherwise)."""
    sub.add_argument("--force", action="store_true", help=f"replace {what} if it exists")
    return sub


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
        type=THREADS,
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


def add_package_flags(
    sub: argparse.ArgumentParser, name: str, *, resume: bool = True
) -> argparse.ArgumentParser:
    """Adds ``--out``, ``--name``, ``--version``, ``--force`` (and ``--resume``) to a trainer."""
    sub.add_argument("--out", required=True, help="package directory (checkpoints inside)")
    sub.add_argument("--name", default=name, help=f"package name in the registry (default {name})")
    sub.add_argument(
        "--version",
        default="1.0.0",
        help="package version (default 1.0.0); give another when NAME@VERSION exists elsewhere",
    )
    sub.add_argument(
        "--force",
        action="store_true",
        help="write into an existing non-empty --out, replacing the package there",
    )
    if resume:
        sub.add_argument(
            "--resume", action="store_true", help="continue from the checkpoint in --out"
        )
    return sub


def check_package_target(args: argparse.Namespace) -> Path:
    """Checks a trainer's ``--out``, ``--name`` and ``--version`` before any training.

    ``--out`` may not be a file or an existing non-empty directory (unless ``--resume`` or
    ``--force``); the name and version must be valid, and ``NAME@VERSION`` may not exist in
    another directory beside ``--out``, nor on the registry's search path when ``--out`` lies
    in one of its roots (elsewhere, retraining a shipped package under its own name is fine: the
    search path never sees both).

    Raises:
        ConfigError: naming the option and the fix.
    """
    from hrl_runtime.manifest import NAME_PATTERN, VERSION_PATTERN
    from hrl_runtime.registry import SkillRegistry

    resume = getattr(args, "resume", False)
    out = checks.output_dir(args.out, "--out", force=args.force, resume=resume)
    if not isinstance(args.name, str) or not NAME_PATTERN.match(args.name):
        raise ConfigError(
            f"--name {checks.shorten(args.name)} is not a package name; use lowercase letters, "
            "digits, '.', '_' and '-', starting with a letter or digit (for example my-skills)"
        )
    if not VERSION_PATTERN.match(args.version):
        raise ConfigError(
            f"--version {checks.shorten(args.version)} is not a version; use numbers joined by "
            "dots, for example 1.0.0"
        )
    here = out.resolve()
    # Two copies of NAME@VERSION are ambiguous only where one registry sees both: beside each
    # other, or when --out lies in a search-path root (then the default search path sees it too).
    registries = [SkillRegistry([out.parent])]
    default = SkillRegistry()
    if any(root.resolve() == here.parent for _, root in default.roots):
        registries.append(default)
    for registry in registries:
        for entry in registry.list():
            if (entry.name, entry.version) == (args.name, args.version) and (
                entry.path.resolve() != here
            ):
                raise ConfigError(
                    f"--name {args.name} --version {args.version}: package "
                    f"{args.name}@{args.version} already exists in {entry.path}; pass another "
                    "--version or --name, or remove that package"
                )
    return out


def check_video(value: str | None, force: bool) -> None:
    """Checks ``--video`` before any work: the path, the format's writer and offscreen GL.

    Raises:
        ConfigError: naming the option and how to fix it.
    """
    if value is None:
        return
    path = checks.output_file(value, "--video", suffixes=(".mp4", ".gif"), force=force)
    if path.suffix.lower() == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--video: writing .mp4 needs imageio-ffmpeg (pip install imageio-ffmpeg); or "
                "write a .gif"
            ) from None
    import envs

    problem = envs.offscreen_rendering_problem()
    if problem:
        raise ConfigError(
            f"--video: offscreen rendering is unavailable ({checks.shorten(problem)}); enable "
            "it with `apt-get install libosmesa6` and MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa "
            "in the environment, or drop --video"
        )


MAX_NUM_ENVS = 256
"""Most environments a trainer steps side by side."""
MAX_ENV_WORKERS = 64
"""Most workers stepping a trainer's environments."""


def add_trainer_env_flags(parser: argparse.ArgumentParser, num_envs_default: str) -> None:
    """A trainer's ``--num-envs``, ``--env-workers``, ``--env-worker-backend`` and
    ``--torch-threads`` (each None when not given, so the config's value stays)."""
    parser.add_argument(
        "--num-envs",
        type=count_type(MAX_NUM_ENVS),
        default=None,
        help=f"environments side by side (default {num_envs_default})",
    )
    parser.add_argument(
        "--env-workers",
        type=count_type(MAX_ENV_WORKERS, low=0),
        default=None,
        help="workers stepping groups of the environments beside the trainer (default 0; at "
        "most --num-envs - 1)",
    )
    parser.add_argument(
        "--env-worker-backend",
        choices=("processes", "ray"),
        default=None,
        help="where --env-workers run: processes on this machine (default) or ray (Ray actors, "
        "one CPU each; the running Ray instance or cluster, else one started for the run)",
    )
    parser.add_argument(
        "--torch-threads",
        type=THREADS,
        default=None,
        help="torch threads of the training updates (default 1)",
    )


def trainer_env_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields :func:`add_trainer_env_flags` sets (None where not given)."""
    return {
        "num_envs": args.num_envs,
        "env_workers": args.env_workers,
        "env_worker_backend": args.env_worker_backend,
        "torch_threads": args.torch_threads,
    }

"""``hrl sweep follow|run|eval``: many seeds (skills, planners, bodies, task files) on the local
backend or on Ray; and the ``--backend`` flags that ``hrl compare`` shares."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from hrl_runtime import checks
from hrl_runtime.cli.common import (
    EPISODES,
    GOALS,
    STEPS,
    THREADS,
    WithJson,
    count_type,
    emit,
    make_env,
    positive_type,
    show_progress,
)
from hrl_runtime.cli.follow import PLANNER_CHOICES
from hrl_runtime.errors import ConfigError
from hrl_runtime.experiments.backends import BACKENDS, BackendConfig, session

MAX_RETRIES = 10
"""Most retries of one trial."""


def _seeds(text: str) -> list[int]:
    from hrl_runtime.experiments.sweep import parse_seeds

    return parse_seeds(text, "value")


SEEDS = checks.argparse_type(lambda text, name: _seeds(text))


def add_backend_flags(sub: argparse.ArgumentParser, jobs_help: str) -> argparse.ArgumentParser:
    """Adds ``--backend``, ``--address``, ``--cpus-per-trial``, ``--jobs`` and ``--retries``."""
    sub.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="local: processes on this machine (default); ray: Ray tasks (pip install "
        "'hrl-runtime[ray]'), on a local instance or the cluster at --address",
    )
    sub.add_argument(
        "--address",
        help="with --backend ray: an existing cluster (auto, or HOST:PORT printed by "
        "`ray start --head`); default: start Ray on this machine for the run",
    )
    sub.add_argument(
        "--cpus-per-trial",
        type=THREADS,
        default=1,
        help="CPUs each trial holds; its thread pools are pinned to as many threads (default 1)",
    )
    sub.add_argument("--jobs", type=THREADS, help=jobs_help)
    sub.add_argument(
        "--retries",
        type=count_type(MAX_RETRIES, low=0),
        default=1,
        help=f"attempts after the first for a trial that fails or whose worker dies "
        f"(0..{MAX_RETRIES}, default 1)",
    )
    return sub


def backend_config(args: argparse.Namespace) -> BackendConfig:
    """The backend the flags of :func:`add_backend_flags` name.

    Raises:
        ConfigError: ``--address`` without ``--backend ray``.
    """
    if args.address is not None and args.backend != "ray":
        raise ConfigError("--address names a Ray cluster; pass --backend ray with it")
    if args.address is not None and not args.address.strip():
        raise ConfigError("--address is empty; give auto or HOST:PORT of `ray start --head`")
    return BackendConfig(args.backend, args.address, args.cpus_per_trial, args.jobs, args.retries)


@contextlib.contextmanager
def trials_session(backend: BackendConfig) -> Iterator[None]:
    """The backend held for the whole command (Ray started or joined once), and what is printed
    while trials run sent to stderr: Ray's driver prints its workers' messages (a worker that
    died, for one) on stdout, which holds only the command's result."""
    with contextlib.redirect_stdout(sys.stderr), session(backend):
        yield


def _report_text(report: dict[str, Any]) -> str:
    axes = [
        key for key in ("task", "skill", "planner", "policy", "perturb") if key in report["rows"][0]
    ]
    lines = [" ".join(f"{axis:>16}" for axis in axes) + f" {'seed':>10} {'success':>8}"]
    for row in report["rows"]:
        values = " ".join(f"{str(row[axis])[-16:]:>16}" for axis in axes)
        lines.append(f"{values} {row['seed']:>10} {row['success_rate']:>8.2f}")
    for group in report["groups"]:
        rate = group["success_rate"]
        interval = rate["ci95"]
        span = f" (95% CI {interval[0]:.2f} .. {interval[1]:.2f})" if interval else ""
        names = ", ".join(f"{axis} {group[axis]}" for axis in axes)
        lines.append(f"{names}: mean success {rate['mean']:.2f} over {rate['n']} seeds{span}")
    lines.append(
        f"{report['trials_run']} trials run on {report['backend']}, {report['trials_resumed']} "
        f"resumed from {report['results']}; {report['wall_seconds']:.1f} s"
    )
    return "\n".join(lines)


def cmd_sweep_follow(args: argparse.Namespace) -> int:
    from hrl_runtime.experiments.follow import parse_goals
    from hrl_runtime.experiments.sweep import sweep
    from hrl_runtime.registry import load_skill

    if (args.goals is None) == (args.random_goals is None):
        raise ConfigError('give exactly one of --goals "x,y;..." or --random-goals N')
    goals = parse_goals(args.goals).tolist() if args.goals is not None else None
    count = len(goals) if goals is not None else args.random_goals
    if args.max_steps is not None and args.max_steps * count > checks.MAX_STEPS:
        raise ConfigError(
            f"{count} goals of {args.max_steps} control steps each allow more than the "
            f"{checks.MAX_STEPS:,} steps of one run; lower --max-steps or the number of goals"
        )
    backend = backend_config(args)
    out = checks.output_dir(args.out, "--out", may_exist=True)  # before any trial
    make_env(args.env).close()  # an unknown env is refused here, not in every trial
    for skill in args.skill:
        load_skill(skill)
    base = {"env": args.env, "random_goals": args.random_goals, "goals": goals,
            "max_steps": args.max_steps, "radius": args.radius}  # fmt: skip
    axes = {"skill": args.skill, "planner": args.planner}
    if args.perturb:
        axes["perturb"] = [_checked_perturbation(text, args.env) for text in args.perturb]
    with trials_session(backend):
        report = sweep("follow", base, axes, args.seeds, out, backend, show_progress())
    emit(args, report, _report_text(report))
    return 0


def _checked_perturbation(text: str, env_id: str) -> str:
    """``text`` if it parses and fits ``env_id``'s body (checked once, not in every trial).

    Raises:
        ConfigError: one line naming the entry at fault.
    """
    from hrl_runtime.cli.follow import parse_perturbation, perturbed_env

    perturbed_env(make_env(env_id), parse_perturbation(text)).close()
    return text


def cmd_sweep_run(args: argparse.Namespace) -> int:
    from hrl_runtime.experiments.sweep import sweep
    from hrl_runtime.taskfiles import load_task

    backend = backend_config(args)
    out = checks.output_dir(args.out, "--out", may_exist=True)
    tasks = [str(load_task(task).path) for task in args.task]  # refused here, not per trial
    axes: dict[str, list[Any]] = {"task": tasks}
    if args.perturb:
        for env_id in {load_task(task).env for task in tasks}:
            for text in args.perturb:
                _checked_perturbation(text, env_id)
        axes["perturb"] = list(args.perturb)
    with trials_session(backend):
        report = sweep("run", {}, axes, args.seeds, out, backend, show_progress())
    emit(args, report, _report_text(report))
    return 0


def cmd_sweep_eval(args: argparse.Namespace) -> int:
    from hrl_runtime.experiments.sweep import sweep
    from hrl_runtime.registry import SkillRegistry

    backend = backend_config(args)
    out = checks.output_dir(args.out, "--out", may_exist=True)
    make_env(args.env).close()
    for policy in args.policy:
        SkillRegistry().load(policy)
    base = {"env": args.env, "episodes": args.episodes, "skill": args.skill}
    with trials_session(backend):
        report = sweep("eval", base, {"policy": args.policy}, args.seeds, out, backend,
                       show_progress())  # fmt: skip
    emit(args, report, _report_text(report))
    return 0


def add_commands(commands: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl sweep follow``, ``hrl sweep run`` and ``hrl sweep eval``."""
    sweep = commands.add_parser(
        "sweep", help="run follow or eval over many seeds, locally or on Ray (resumable)"
    )
    kinds = sweep.add_subparsers(dest="kind", required=True, metavar="COMMAND")
    jobs_help = (
        "trials side by side on this machine (local backend, and the CPUs of a Ray instance "
        "started here); default: every core"
    )

    follow = with_json(kinds.add_parser("follow", help="`hrl follow --sync` once per seed"))
    follow.add_argument(
        "--skill", required=True, nargs="+", help="skill NAME[@VERSION] or directory; several "
        "sweep each"
    )  # fmt: skip
    follow.add_argument("--env", required=True, help="environment id (see `hrl envs`)")
    goals = follow.add_mutually_exclusive_group(required=True)
    goals.add_argument("--goals", help='the same goals "x,y;x,y;..." (metres) for every seed')
    goals.add_argument(
        "--random-goals", type=GOALS, help="sample N reachable goals per seed (from the seed)"
    )
    follow.add_argument(
        "--planner", nargs="+", default=["sequence"], choices=PLANNER_CHOICES,
        help="high level(s); several sweep each (default sequence)",
    )  # fmt: skip
    follow.add_argument("--seeds", type=SEEDS, required=True, help="seeds: 1-8, or 0,3,7")
    follow.add_argument(
        "--max-steps", type=STEPS, help="control steps per goal (default: the env's episode)"
    )
    follow.add_argument(
        "--radius", type=positive_type(checks.MAX_MAGNITUDE), help="success radius, m"
    )
    follow.add_argument(
        "--perturb",
        nargs="+",
        metavar="NAME=VALUE[,...]",
        help="bodies to sweep as `hrl follow --perturb` writes them (gain=0.4,mirror=x ...); "
        "each is a group of the report",
    )
    add_backend_flags(follow, jobs_help)
    follow.add_argument(
        "--out",
        default="runs/sweep-follow",
        help="trials.jsonl goes here, one finished trial a line; a sweep run again with the "
        "same --out skips the trials it holds",
    )
    follow.set_defaults(func=cmd_sweep_follow)

    _add_run_command(kinds, with_json, jobs_help)

    evaluate = with_json(kinds.add_parser("eval", help="`hrl eval --sync` once per seed"))
    evaluate.add_argument("--policy", required=True, nargs="+", help="policy package(s)")
    evaluate.add_argument("--env", required=True)
    evaluate.add_argument("--episodes", type=EPISODES, default=20, help="episodes per seed")
    evaluate.add_argument("--skill", help="override the skill the policy names")
    evaluate.add_argument(
        "--seeds",
        type=SEEDS,
        required=True,
        help="seeds: 1-8, or 0,3,7; episode i of seed s resets with s + i, so seeds --episodes "
        "apart (0,20,40) give episodes that differ",
    )
    add_backend_flags(evaluate, jobs_help)
    evaluate.add_argument("--out", default="runs/sweep-eval", help="trials.jsonl goes here")
    evaluate.set_defaults(func=cmd_sweep_eval)


def _add_run_command(kinds: Any, with_json: WithJson, jobs_help: str) -> None:
    """``hrl sweep run``."""
    run = with_json(kinds.add_parser("run", help="`hrl run TASK` once per seed"))
    run.add_argument("task", nargs="+", help="task file(s) (.toml) or shipped examples' names")
    run.add_argument(
        "--seeds",
        type=SEEDS,
        required=True,
        help="seeds (1-8, or 0,3,7), each replacing the task's own; tasks run in the real-time "
        "asynchronous loop, so rows of one seed may differ between runs",
    )
    run.add_argument(
        "--perturb",
        nargs="+",
        metavar="NAME=VALUE[,...]",
        help="bodies to sweep as `hrl run --perturb` writes them; each is a group",
    )
    add_backend_flags(run, jobs_help)
    run.add_argument("--out", default="runs/sweep-run", help="trials.jsonl goes here")
    run.set_defaults(func=cmd_sweep_run)

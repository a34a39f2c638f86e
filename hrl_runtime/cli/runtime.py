"""CLI commands of the real-time runtime.

- ``hrl run TASK_FILE [--json] [--plot out.png]``: a long-horizon task file in the async loop;
- ``hrl serve --port P [--host H] [--skill S] [--planner P] [--keys SECRET --authorized DIR]
  [--skills NAME[@VERSION] ...] [--insecure]``: the ZeroMQ server (off loopback it needs keys or
  ``--insecure``, and ``--skills``).
"""

from __future__ import annotations

import argparse
from typing import Any

from hrl_runtime import checks
from hrl_runtime.cli.common import (
    THREADS,
    WithJson,
    add_force_flag,
    count_type,
    emit,
    ms,
    positive_type,
    show_progress,
)
from hrl_runtime.cli.follow import add_perturb_flag, parse_perturbation
from hrl_runtime.serving.config import ServerConfig
from hrl_runtime.serving.server import PolicyServer


# --- hrl run ---------------------------------------------------------------------------------
def _task_text(payload: dict[str, Any]) -> str:
    lines = [
        f"task {payload['task']} ({payload['file']}) on {payload['env']}",
        f"{'step':18} {'skill':16} {'high':9} {'outcome':10} {'time s':>7} {'ticks':>6} "
        f"{'faults':>6} {'misses':>6} {'p99 ms':>7}",
    ]
    for step in payload["steps"]:
        lines.append(
            f"{step['id']:18} {step['skill']:16} {step['high_level']:9} {step['outcome']:10} "
            f"{step['time_s']:7.2f} {step['steps']:6d} {step['faults'].get('total', 0):6d} "
            f"{step['deadline_misses']:6d} {ms(step['control_latency_ms']['p99']):>7}"
        )
    lines.append(
        f"{'SUCCESS' if payload['success'] else 'FAILED'} ({payload['reason']}): "
        f"{len(payload['steps'])} steps run, {payload['total_steps']} ticks in "
        f"{payload['time_s']:.1f} s, {payload['faults']} faults, "
        f"{payload['deadline_misses']} deadline misses"
    )
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    """``hrl run``: exit status 0 when the task succeeds, 1 when it fails, 2 on bad input."""
    from hrl_runtime.taskfiles import load_task, plot_task, run_task

    plot = None
    if args.plot is not None:  # checked before the task runs
        plot = checks.output_file(args.plot, "--plot", suffixes=(".png",), force=args.force)
    task = load_task(args.task)
    perturbation = parse_perturbation(args.perturb)
    report = run_task(
        task, progress=show_progress(), threads=args.threads, perturbation=perturbation
    )
    payload = report.to_json()
    if plot is not None:
        payload["plot"] = str(plot_task(report, plot))
    text = _task_text(payload) + (f"\nwrote {payload['plot']}" if args.plot else "")
    emit(args, payload, text)
    return 0 if report.success else 1


# --- hrl serve -------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    """``hrl serve``: refuses (status 2, one line) before binding or loading anything when the
    configuration would expose the robot (:meth:`ServerConfig.validate`)."""
    config = ServerConfig(
        host=args.host,
        port=args.port,
        skill=args.skill,
        planner=args.planner,
        control_period_s=1.0 / args.rate,
        planner_threads=args.threads,
        secret_key_file=args.keys,
        authorized_keys_dir=args.authorized,
        insecure=args.insecure,
        skills=tuple(args.skills) if args.skills else None,
        client_rate_hz=args.client_rate,
        client_burst=args.client_burst,
    )
    config.validate()  # before anything binds or loads
    server = PolicyServer(config)
    access = "CURVE keys" if config.secret_key_file else "no authentication"
    print(
        f"hrl serve: listening on {server.address} ({access}; init may load "
        f"{', '.join(server.skills.refs())}; Ctrl-C stops)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def add_commands(commands: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl run`` and ``hrl serve``."""
    run = with_json(commands.add_parser("run", help="run a long-horizon task file"))
    run.add_argument("task", help="task file (.toml) or a shipped example's name")
    run.add_argument("--plot", help="write a PNG of the run here (a .png file)")
    add_force_flag(run, "the --plot file")
    run.add_argument(
        "--threads", type=THREADS, help="planner threads (default: one fewer than the cores)"
    )
    add_perturb_flag(run)
    run.set_defaults(func=cmd_run)

    serve = commands.add_parser("serve", help="serve skills to an external control loop (ZeroMQ)")
    server = ServerConfig()
    serve.add_argument(
        "--port", type=count_type(65_535), default=server.port, help="TCP port (default 5555)"
    )
    serve.add_argument("--host", default=server.host, help="interface (default: loopback only)")
    serve.add_argument(
        "--skill",
        help="default skill for init: NAME[@VERSION] (a directory only without --skills; "
        "with --skills the default is its first entry)",
    )
    serve.add_argument(
        "--planner", default=server.planner, help="default high level: mppi or sequence"
    )
    serve.add_argument(
        "--rate",
        type=positive_type(checks.MAX_RATE_HZ),
        default=1.0 / server.control_period_s,
        help=f"control rate, Hz (at most {checks.MAX_RATE_HZ:g})",
    )
    serve.add_argument(
        "--threads", type=THREADS, help="planner threads (default: one fewer than the cores)"
    )
    add_access_flags(serve, server)
    serve.set_defaults(func=cmd_serve)


def add_access_flags(serve: argparse.ArgumentParser, server: ServerConfig) -> None:
    """Keys, the skill allow-list and the per-client limits of ``hrl serve``."""
    serve.add_argument("--keys", help="the server's NAME.key_secret (`hrl keys generate`)")
    serve.add_argument("--authorized", help="directory of the client public keys (*.key) to admit")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="serve a non-loopback --host without keys (anyone on the network can connect)",
    )
    serve.add_argument(
        "--skills",
        nargs="+",
        metavar="NAME[@VERSION]",
        help="the only skills init may load (registry names; required off loopback)",
    )
    serve.add_argument(
        "--client-rate",
        type=positive_type(checks.MAX_RATE_HZ * 10),
        default=server.client_rate_hz,
        help=f"requests/s each client may sustain (default {server.client_rate_hz:g})",
    )
    serve.add_argument(
        "--client-burst",
        type=count_type(1_000_000),
        default=server.client_burst,
        help=f"requests a client may send at once (default {server.client_burst})",
    )

"""CLI commands of the real-time runtime.

- ``hrl run TASK_FILE [--json] [--plot out.png]``: a long-horizon task file in the async loop;
- ``hrl serve --port P [--host H] [--skill S] [--planner P]``: the ZeroMQ server.
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
from hrl_runtime.serving.server import PolicyServer, ServerConfig


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
    report = run_task(task, progress=show_progress(), threads=args.threads)
    payload = report.to_json()
    if plot is not None:
        payload["plot"] = str(plot_task(report, plot))
    text = _task_text(payload) + (f"\nwrote {payload['plot']}" if args.plot else "")
    emit(args, payload, text)
    return 0 if report.success else 1


# --- hrl serve -------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    config = ServerConfig(
        host=args.host,
        port=args.port,
        skill=args.skill,
        planner=args.planner,
        control_period_s=1.0 / args.rate,
        planner_threads=args.threads,
    )
    server = PolicyServer(config)
    print(f"hrl serve: listening on {server.address} (Ctrl-C stops)", flush=True)
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
    run.set_defaults(func=cmd_run)

    serve = commands.add_parser("serve", help="serve skills to an external control loop (ZeroMQ)")
    server = ServerConfig()
    serve.add_argument(
        "--port", type=count_type(65_535), default=server.port, help="TCP port (default 5555)"
    )
    serve.add_argument("--host", default=server.host, help="interface (default: loopback only)")
    serve.add_argument("--skill", help="default skill for init (NAME[@VERSION] or directory)")
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
    serve.set_defaults(func=cmd_serve)

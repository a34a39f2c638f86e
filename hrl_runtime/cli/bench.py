"""``hrl bench``: planning latency side by side with other planners, and ``hrl bench loop``: the
asynchronous loop's real-time figures."""

from __future__ import annotations

import argparse

from hrl_runtime import checks
from hrl_runtime.cli.common import STEPS, THREADS, WithJson, count_type, emit, ms, show_progress


def cmd_bench(args: argparse.Namespace) -> int:
    from hrl_runtime.experiments.planning_bench import run_benchmark, table_lines

    if args.target == "loop":
        return cmd_bench_loop(args)
    out = checks.output_dir(args.out, "--out", may_exist=True)  # before any run
    report = run_benchmark(
        runs=args.runs,
        repeats=args.repeats,
        threads=args.threads or 2,
        sweep=not args.no_sweep,
        out_dir=out,
        progress=show_progress(),
    )
    text = "\n".join(table_lines(report)) + f"\nwrote {report['plot']} and {report['table']}"
    emit(args, report, text)
    return 0


def cmd_bench_loop(args: argparse.Namespace) -> int:
    from hrl_runtime.experiments.loop_bench import run_loop_benchmark

    report = run_loop_benchmark(
        steps=args.steps, seed=getattr(args, "seed", 0), load=args.load, threads=args.threads
    )
    control = report["control_latency_ms"]
    text = "\n".join(
        [
            report["workload"],
            f"steps {report['steps']} in {report['wall_time_s']:.1f} s beside "
            f"{report['load']} busy processes, deadline misses {report['deadline_misses']} "
            f"(skipped cycles {report['skipped_cycles']})",
            f"control latency ms  p50 {ms(control['p50'])}  p99 {ms(control['p99'])}  "
            f"max {ms(control['max'])}",
            f"tick lateness ms    p99 {ms(report['tick_lateness_ms']['p99'])}  "
            f"max {ms(report['tick_lateness_ms']['max'])}",
            f"planner {report['planner_rate_hz']:.1f} Hz, latency ms p50 "
            f"{ms(report['planner_latency_ms']['p50'])} p99 "
            f"{ms(report['planner_latency_ms']['p99'])}; plan age p99 "
            f"{ms(report['plan_age_ms']['p99'])} ms",
            f"faults {report['faults']}, goals reached {report['goals_reached']}",
        ]
    )
    emit(args, report, text)
    return 0


def add_commands(commands: argparse._SubParsersAction, with_json: WithJson) -> None:
    """``hrl bench [planner|loop]``."""
    bench = with_json(
        commands.add_parser("bench", help="planning latency side by side (W1 workload)")
    )
    bench.add_argument(
        "target",
        nargs="?",
        choices=("planner", "loop"),
        default="planner",
        help="planner (default): planning latency; loop: the async control loop at 100 Hz",
    )
    bench.add_argument(
        "--steps", type=STEPS, default=10_000, help=f"loop: control ticks (1..{checks.MAX_STEPS})"
    )
    bench.add_argument(
        "--runs", type=count_type(100), default=3, help="side-by-side runs (median taken)"
    )
    bench.add_argument(
        "--repeats",
        type=count_type(1_000_000, low=10),
        default=200,
        help="timed iterations per run (>= 10)",
    )
    bench.add_argument(
        "--threads",
        type=THREADS,
        help="planner: cores each contender may use (default 2); loop: planner threads "
        "(default: one fewer than the cores)",
    )
    bench.add_argument(
        "--load",
        type=count_type(64, low=0),
        default=0,
        help="loop: busy processes beside the loop (one core each, 0..64)",
    )
    bench.add_argument("--no-sweep", action="store_true", help="skip the K x T sweep")
    bench.add_argument("--out", default="runs/bench", help="where the table and PNG go")
    bench.set_defaults(func=cmd_bench)

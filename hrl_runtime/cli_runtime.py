"""CLI commands of the real-time runtime (registered into ``hrl`` by :mod:`hrl_runtime.cli`).

- ``hrl run TASK_FILE [--json] [--plot out.png]``: a long-horizon task file in the async loop;
- ``hrl serve --port P [--host H] [--skill S] [--planner P]``: the ZeroMQ server;
- ``hrl bench loop [--steps N] [--json]``: the async loop's real-time figures (via ``hrl bench``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from hrl_runtime.errors import ConfigError

logger = logging.getLogger("hrl_runtime.cli")


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    from hrl_runtime.cli import _emit as emit

    emit(args, payload, text)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


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
            f"{step['deadline_misses']:6d} {_ms(step['control_latency_ms']['p99']):>7}"
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
    from hrl_runtime.tasks import load_task, plot_task, run_task

    task = load_task(args.task)
    report = run_task(task, progress=not args.json)
    payload = report.to_json()
    if args.plot:
        payload["plot"] = str(plot_task(report, args.plot))
    text = _task_text(payload) + (f"\nwrote {payload['plot']}" if args.plot else "")
    _emit(args, payload, text)
    return 0 if report.success else 1


# --- hrl serve -------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from hrl_runtime.server import PolicyServer, ServerConfig

    config = ServerConfig(
        host=args.host,
        port=args.port,
        skill=args.skill,
        planner=args.planner,
        control_period_s=1.0 / args.rate,
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


# --- hrl bench loop --------------------------------------------------------------------------
def run_loop_benchmark(steps: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """The async loop at 100 Hz: LatentMPPI (K=1024, T=10) on dads-pointmass following random
    goals in hrl/PointArena-v0 for ``steps`` ticks.

    Returns:
        One JSON-ready object: ``steps``, ``deadline_misses``, ``control_latency_ms`` (``p50``,
        ``p99``, ``max``), ``planner_rate_hz`` and the rest of the loop summary.
    """
    import os
    import platform

    import envs
    from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig
    from hrl_runtime.cli import _load_skill
    from planners import MPPIConfig, SequenceConfig, build_goal_follower

    if steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    skill = _load_skill("dads-pointmass")
    env = envs.make_env("hrl/PointArena-v0", max_episode_steps=steps + 10)
    goals = envs.goal_space(env).sample(np.random.default_rng(seed), max(10, steps // 50))
    mppi = MPPIConfig(num_samples=1024, horizon=10, seed=seed)
    high_level = build_goal_follower(
        "mppi", skill, goals, (0, 1), SequenceConfig(0.5, 600), seed=seed, mppi=mppi
    )
    config = AsyncLoopConfig(
        control_period_s=0.01,
        planner_nice=int(os.environ.get("HRL_PLANNER_NICE", "0")),
        planner_rt_priority=int(os.environ.get("HRL_PLANNER_RT", "0")) or None,
    )
    with AsyncControlLoop(skill, high_level, config) as loop:
        result = loop.run(env, max_steps=steps, seed=seed)
    env.close()
    summary = result.summary()
    reached = sum(g["reached"] for g in high_level.summary()["goals"])
    return {
        "workload": "async loop, 100 Hz, LatentMPPI K=1024 T=10, dads-pointmass, "
        "random goals in hrl/PointArena-v0",
        **summary,
        "goals_reached": reached,
        "config": {
            "planner_nice": config.planner_nice,
            "planner_rt_priority": config.planner_rt_priority,
            "control_rt_priority": config.control_rt_priority,
            "gc_freeze": config.gc_freeze,
            "gc_disable": config.gc_disable,
            "switch_interval_s": config.switch_interval_s,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "numba_threads": os.environ.get("NUMBA_NUM_THREADS"),
        },
    }


def cmd_bench_loop(args: argparse.Namespace) -> int:
    report = run_loop_benchmark(steps=args.steps, seed=getattr(args, "seed", 0))
    control = report["control_latency_ms"]
    text = "\n".join(
        [
            report["workload"],
            f"steps {report['steps']} in {report['wall_time_s']:.1f} s, deadline misses "
            f"{report['deadline_misses']} (skipped cycles {report['skipped_cycles']})",
            f"control latency ms  p50 {_ms(control['p50'])}  p99 {_ms(control['p99'])}  "
            f"max {_ms(control['max'])}",
            f"tick lateness ms    p99 {_ms(report['tick_lateness_ms']['p99'])}  "
            f"max {_ms(report['tick_lateness_ms']['max'])}",
            f"planner {report['planner_rate_hz']:.1f} Hz, latency ms p50 "
            f"{_ms(report['planner_latency_ms']['p50'])} p99 "
            f"{_ms(report['planner_latency_ms']['p99'])}; plan age p99 "
            f"{_ms(report['plan_age_ms']['p99'])} ms",
            f"faults {report['faults']}, goals reached {report['goals_reached']}",
        ]
    )
    _emit(args, report, text)
    return 0


def add_commands(
    commands: argparse._SubParsersAction,
    with_json: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    """Adds ``run`` and ``serve`` to the ``hrl`` parser (``bench loop`` lives under bench)."""
    run = with_json(commands.add_parser("run", help="run a long-horizon task file"))
    run.add_argument("task", help="task file (.toml) or a shipped example's name")
    run.add_argument("--plot", help="write a PNG of the run here")
    run.set_defaults(func=cmd_run)

    serve = commands.add_parser("serve", help="serve skills to an external control loop (ZeroMQ)")
    serve.add_argument("--port", type=int, default=5555, help="TCP port (default 5555)")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default: loopback only)")
    serve.add_argument("--skill", help="default skill for init (NAME[@VERSION] or directory)")
    serve.add_argument("--planner", default="mppi", help="default high level: mppi or sequence")
    serve.add_argument("--rate", type=float, default=100.0, help="control rate, Hz")
    serve.set_defaults(func=cmd_serve)

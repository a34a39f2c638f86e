"""The asynchronous loop's real-time figures (``hrl bench loop``): a latent-MPPI goal follower at
100 Hz on the shipped DADS skills, with its deadline misses, latencies and planner rate."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import envs
from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig
from hrl_runtime.errors import ConfigError
from hrl_runtime.registry import load_skill
from planners import MPPIConfig, SequenceConfig, build_goal_follower


@contextmanager
def busy_processes(count: int) -> Iterator[list[subprocess.Popen]]:
    """``count`` processes that each keep one core busy (a pure-Python spin loop) for the scope,
    so that the loop is measured beside a loaded machine, as on a robot's computer."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        time.sleep(0.5 if count else 0.0)  # let them take their cores before measuring
        yield spinners
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()


def run_loop_benchmark(
    steps: int = 10_000, seed: int = 0, load: int = 0, threads: int | None = None
) -> dict[str, Any]:
    """The async loop at 100 Hz: LatentMPPI (K=1024, T=10) on dads-pointmass following random
    goals in hrl/PointArena-v0 for ``steps`` ticks.

    Args:
        steps: control ticks.
        seed: goals, reset and planner seed.
        load: busy processes (one core each) running beside the loop for the measurement.
        threads: numba threads of the planner thread (None: one fewer than the cores).

    Returns:
        One JSON-ready object: ``steps``, ``deadline_misses``, ``control_latency_ms`` (``p50``,
        ``p99``, ``max``), ``planner_rate_hz``, ``load`` and the rest of the loop summary.
    """
    if steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    if load < 0:
        raise ConfigError(f"--load must be >= 0 busy processes, got {load}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    skill = load_skill("dads-pointmass")
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
        planner_threads=threads,
    )
    with AsyncControlLoop(skill, high_level, config) as loop, busy_processes(load):
        result = loop.run(env, max_steps=steps, seed=seed)
    env.close()
    summary = result.summary()
    reached = sum(g["reached"] for g in high_level.summary()["goals"])
    return {
        "workload": "async loop, 100 Hz, LatentMPPI K=1024 T=10, dads-pointmass, "
        "random goals in hrl/PointArena-v0",
        **summary,
        "load": load,
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

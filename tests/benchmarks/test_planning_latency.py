"""pytest-benchmark suite for planning latency (not part of the timed test path).

Run with ``pytest tests/benchmarks --benchmark-only`` (thread variables as in the Makefile); the
side-by-side comparison against pytorch_mppi, each contender in its own process, is
``hrl bench``. Solution quality is recorded beside time: the rollout's max error against a
float64 reference and the plan's cost.
"""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from hrl_runtime.experiments.planning_contenders import (
    Workload,
    hrl_mppi_contender,
    reference_rollout,
)

pytest.importorskip("pytest_benchmark")


@pytest.mark.parametrize(("samples", "horizon"), [(1024, 10), (256, 10), (4096, 10)])
def test_mppi_iteration(benchmark, samples, horizon):
    iterate, check = hrl_mppi_contender(Workload(num_samples=samples, horizon=horizon))
    benchmark.pedantic(iterate, rounds=50, warmup_rounds=5)
    error = check()
    benchmark.extra_info["rollout_max_abs_error"] = error
    planner = iterate.__self__
    benchmark.extra_info["nominal_cost"] = float(planner.nominal_costs[-1])
    assert error < 2e-3


def test_rollout_kernel_w1(benchmark):
    iterate, _ = hrl_mppi_contender(Workload())
    planner = iterate.__self__
    iterate()
    benchmark.pedantic(planner._rollout, rounds=50, warmup_rounds=5)
    exported = planner.dynamics.export_mlp()
    reference = reference_rollout(exported, planner.state, planner.commands)
    error = float(np.max(np.abs(planner.states - reference)))
    benchmark.extra_info["rollout_max_abs_error"] = error
    assert error < 2e-3


def test_fast_tanh_throughput(benchmark):
    values = np.linspace(-6, 6, 1 << 20, dtype=np.float32)
    work = values.copy()

    def run():
        work[:] = values
        kernels.tanh_inplace(work)

    benchmark.pedantic(run, rounds=50, warmup_rounds=3)
    assert np.max(np.abs(work - np.tanh(values))) <= kernels.TANH_MAX_ABS_ERROR

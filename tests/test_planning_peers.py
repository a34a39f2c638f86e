"""The planning benchmark's peers compute what they claim: the folded ``nn.Sequential`` is the
shared network's function, and every contender's rollout matches the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrl_runtime.experiments import planning_contenders
from hrl_runtime.experiments.planning_contenders import (
    CONTENDERS,
    FLOORS,
    ROLLOUT_TOLERANCE,
    Workload,
    build_network,
    folded_sequential,
    setup_contender,
)

SMALL = Workload(num_samples=64, horizon=3)


def test_folded_sequential_is_the_shared_networks_function():
    network = build_network(SMALL)
    net = folded_sequential(network.export_mlp())
    assert [type(layer).__name__ for layer in net] == ["Linear", "Tanh"] * 2 + ["Linear"]
    generator = torch.Generator().manual_seed(3)
    states = torch.randn(256, SMALL.state_dim, generator=generator) * 2.0
    commands = torch.rand(256, SMALL.command_dim, generator=generator) * 2.0 - 1.0
    with torch.no_grad():
        expected = network(states, commands)
        folded = states + net(torch.cat([states, commands], -1))
    # The state change is ~0.1 in size: float32 rounding of the folded weights stays far below.
    np.testing.assert_allclose(folded.numpy(), expected.numpy(), rtol=0, atol=2e-6)
    assert not torch.equal(folded - states, torch.zeros_like(states))


def test_folding_refuses_a_mixture_head():
    exported = build_network(SMALL).export_mlp() | {"head": "mog"}
    with pytest.raises(ValueError, match="mean head"):
        folded_sequential(exported)


@pytest.mark.parametrize("contender", [name for name in CONTENDERS if name not in FLOORS])
def test_every_contenders_rollout_matches_the_float64_reference(contender):
    iterate, check = setup_contender(contender, SMALL)
    for _ in range(2):
        iterate()
    error = check()
    assert error is not None and 0.0 <= error <= ROLLOUT_TOLERANCE


@pytest.mark.parametrize("contender", ["pytorch_mppi_inference", "torch_loop"])
def test_the_check_catches_a_peer_that_computes_something_else(contender, monkeypatch):
    def off_by_a_little(exported):
        net = folded_sequential(exported)
        with torch.no_grad():
            net[-1].bias += 0.01
        return net

    monkeypatch.setattr(planning_contenders, "folded_sequential", off_by_a_little)
    _, check = setup_contender(contender, SMALL)
    assert check() > ROLLOUT_TOLERANCE


def test_a_worker_reports_the_page_faults_and_kernel_time_of_its_iterations():
    from hrl_runtime.experiments.planning_bench import combine_runs, table_lines, worker

    workload = planning_contenders.Workload(num_samples=64, horizon=3, hidden=(16, 16))
    result = worker("torch_loop", workload, repeats=3, warmup=1, threads=1)
    assert result["page_faults_per_iteration"] >= 0 and result["system_ms_per_iteration"] >= 0
    runs = [dict(result, page_faults_per_iteration=faults) for faults in (10.0, 30.0, 20.0)]
    row = combine_runs(runs)
    assert row["page_faults_per_iteration"] == 20.0  # the median over runs
    report = {
        "contenders": {"torch_loop": row},
        **{f"speedup_vs_{p}": 1.0 for p in planning_contenders.TORCH_PEERS},
        "gemm_floor_efficiency": 1.0,
        "p99_over_median": 1.0,
    }
    rows = [line for line in table_lines(report) if line.startswith("| torch_loop |")]
    assert len(rows) == 1 and "| 20 |" in rows[0]

"""Planners, loops and trainers run with the thread pools they configure, not with the host's, and
give the host its own settings back afterwards."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box
from threadpoolctl import threadpool_info, threadpool_limits

import kernels
from hrl_runtime import (
    AsyncControlLoop,
    AsyncLoopConfig,
    ControlLoop,
    HierarchicalAgent,
    HighLevel,
    LoopConfig,
    Skill,
)
from hrl_runtime.threads import ThreadPools, planner_threads, pool_report, usable_cores
from planners import LatentMPPI, MPPIConfig
from skill_library.run import TrainingRun

FAST = {"control_rt_priority": None, "gc_disable": False}


def blas_threads() -> set[int]:
    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


@pytest.fixture
def busy_host():
    """A host program that sized every pool to two threads (as an unpinned process does)."""
    torch_before, numba_before = torch.get_num_threads(), kernels.get_threads()
    with threadpool_limits(limits=2, user_api="blas"):
        torch.set_num_threads(2)
        kernels.set_threads(kernels.max_threads())
        yield
    torch.set_num_threads(torch_before)
    kernels.set_threads(numba_before)


def test_thread_pools_apply_for_their_scope_and_restore_the_host(busy_host):
    with ThreadPools(blas=1, torch=1, numba=1):
        assert blas_threads() == {1}
        assert torch.get_num_threads() == 1 and kernels.get_threads() == 1
        report = pool_report()
        assert set(report["blas"].values()) == {1} and report["torch"] == 1
    assert blas_threads() == {2}
    assert torch.get_num_threads() == 2 and kernels.get_threads() == kernels.max_threads()


def test_planner_threads_leave_the_control_thread_a_core():
    cores = min(usable_cores(), kernels.max_threads())
    assert planner_threads(asynchronous=False) == cores
    assert planner_threads(asynchronous=True) == max(1, cores - 1)
    assert planner_threads(asynchronous=True, requested=1) == 1
    with pytest.raises(ValueError):
        planner_threads(asynchronous=True, requested=0)


class CommandSkill(Skill):
    kind = "test_command"

    def __init__(self):
        obs = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        box = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        super().__init__(obs, box, box, hold_steps=2)

    def act(self, obs, command):
        return np.asarray(command, np.float64)

    package_spaces = package_config = package_tensors = from_package = None


class PoolProbe(HighLevel):
    """Records, from inside optimize(), the pools of the thread that plans."""

    def __init__(self):
        self.seen: list[dict] = []
        self.threads: set[int] = set()

    def set_state(self, obs):
        pass

    def optimize(self):
        self.threads.add(threading.get_ident())
        self.seen.append(pool_report())

    def command(self, obs, t):
        return np.array([0.1, -0.1], np.float32)


class Integrator:
    def __init__(self):
        self.action_space = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        self.state = np.zeros(4, np.float32)
        return self.state.copy(), {}

    def step(self, action):
        self.state[:2] += 0.01 * np.asarray(action, np.float32)
        return self.state.copy(), 0.0, False, False, {}


def test_the_synchronous_loop_plans_with_its_pools(busy_host):
    probe = PoolProbe()
    result = ControlLoop(LoopConfig(threads=1)).run(
        HierarchicalAgent(probe, CommandSkill()), Integrator(), max_steps=6
    )
    assert probe.seen and all(set(r["blas"].values()) == {1} for r in probe.seen)
    assert all(r["torch"] == 1 and r["numba"] == 1 for r in probe.seen)
    assert result.summary()["threads"]["numba"] == 1
    assert blas_threads() == {2} and torch.get_num_threads() == 2  # the host's, back


def test_the_planner_thread_plans_with_one_core_fewer(busy_host):
    probe = PoolProbe()
    config = AsyncLoopConfig(control_period_s=0.01, **FAST)
    with AsyncControlLoop(CommandSkill(), probe, config) as loop:
        result = loop.run(Integrator(), max_steps=20)
        assert torch.get_num_threads() == 1 and blas_threads() == {1}  # while the loop is open
    assert threading.get_ident() not in probe.threads  # it planned in its own thread
    expected = planner_threads(asynchronous=True)
    assert probe.seen and all(r["numba"] == expected for r in probe.seen)
    assert all(set(r["blas"].values()) == {1} and r["torch"] == 1 for r in probe.seen)
    assert result.summary()["threads"]["planner_numba"] == expected
    assert blas_threads() == {2} and torch.get_num_threads() == 2  # closed: the host's, back


def test_latent_mppi_sets_the_threads_it_was_configured_with(reach_skill, busy_host):
    planner = LatentMPPI(reach_skill, MPPIConfig(num_samples=64, horizon=4, threads=1))
    planner.reset(np.zeros(4, np.float32))
    planner.set_goal(np.array([1.0, 1.0]))
    assert kernels.get_threads() == kernels.max_threads()
    planner.optimize()
    assert kernels.get_threads() == 1  # numba's setting is the planning thread's


def test_a_training_session_runs_with_its_pools(tmp_path, busy_host):
    from skill_library.spirl.config import SkillTrainingConfig

    run = TrainingRun(
        SkillTrainingConfig(), tmp_path, tag="probe", budget="updates", progress=False
    )
    with run.session():
        assert torch.get_num_threads() == 1 and blas_threads() == {1}
    assert torch.get_num_threads() == 2 and blas_threads() == {2}


def test_latent_mppi_rolls_out_with_serial_blas_and_gives_the_host_its_pools_back(
    reach_skill, busy_host
):
    """A program calling optimize() directly, its BLAS sized to every core, still gets the
    kernels' single-threaded GEMMs inside the parallel sample blocks."""
    planner = LatentMPPI(reach_skill, MPPIConfig(num_samples=64, horizon=4, iterations=2))
    planner.reset(np.zeros(4, np.float32))
    planner.set_goal(np.array([1.0, 1.0]))
    seen: list[set[int]] = []
    rollout = planner._rollout

    def probed_rollout():
        seen.append(blas_threads())
        rollout()

    planner._rollout = probed_rollout
    planner.optimize()
    assert seen == [{1}, {1}]
    assert blas_threads() == {2}

"""LatentMPPI: reaches goals, lowers cost, respects bounds, is reproducible, backends agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box

from hrl_runtime import ControlLoop, HierarchicalAgent, IncompatibleError, LoopConfig, Skill
from hrl_runtime.skill import SkillDynamics, SkillPrior
from planners import GoalSequence, LatentMPPI, MPPIConfig, SequenceConfig, build_goal_follower
from skill_library.dynamics import LearnedDynamics
from skill_library.networks import DynamicsNetConfig, SkillDynamicsNet

OBS = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
ACT = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)


class LatentSkill(Skill):
    """A stand-in skill with latent commands in [-1, 1]^2 and given components."""

    kind = "test_latent"

    def __init__(self, dynamics, prior=None, hold_steps=10):
        command = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        super().__init__(OBS, command, ACT, hold_steps, dynamics=dynamics, prior=prior)

    def act(self, obs, command):
        return np.clip(command, -1, 1)

    def package_config(self):
        return {}

    def package_tensors(self):
        return {}

    @classmethod
    def from_package(cls, package):
        raise NotImplementedError


class VelocityDynamics(SkillDynamics):
    """x-y moves by 0.3 m per held command z in [-1, 1]^2; optionally NaN for some commands."""

    def __init__(self, nan_above: float | None = None):
        self.state_indices = (0, 1)
        self.nan_above = nan_above

    def predict(self, states, commands):
        out = states + 0.3 * commands
        if self.nan_above is not None:
            out[commands[:, 0] > self.nan_above] = np.nan
        return out


def plan_from(planner, xy, goal):
    planner.reset(np.array([*xy, 0.0, 0.0], np.float32))
    planner.set_goal(np.asarray(goal, np.float32))
    planner.optimize()
    return planner


def test_reaches_goals_in_mujoco_with_the_scripted_reach_dynamics(reach_skill):
    import envs

    env = envs.make_env("hrl/PointArena-v0", max_episode_steps=3000)
    goals = np.array([[3.0, 3.0], [-3.5, 1.0], [0.5, -4.0]])
    high_level = build_goal_follower(
        "mppi", reach_skill, goals, (0, 1), SequenceConfig(0.5, 1000), seed=1
    )
    agent = HierarchicalAgent(high_level, reach_skill)
    result = ControlLoop(LoopConfig(control_period_s=env.unwrapped.dt)).run(
        agent, env, max_steps=3000, seed=1
    )
    assert high_level.summary()["success_rate"] == 1.0
    assert result.faults == []
    planned = result.planner_latency_s[np.isfinite(result.planner_latency_s)]
    assert planned.size >= result.steps // reach_skill.hold_steps


@pytest.mark.parametrize("method", ["mppi", "cem"])
def test_cost_decreases_over_iterations(method):
    """Sampling-based updates need not lower the nominal cost at every iteration (with K=16 MPPI
    goes up at some iteration for about one seed in seven), so the claim is statistical: over 20
    seeds the last nominal cost is below the first in at least 16, and the mean relative
    improvement is at least 0.2. Measured: 20 of 20 seeds, 0.49 (MPPI) and 0.36 (CEM). Updates
    that ignore the costs (uniform weights, all samples elite) improve 12 of 20 by 0.01."""
    skill = LatentSkill(VelocityDynamics())
    first, last = [], []
    for seed in range(20):
        config = MPPIConfig(num_samples=16, horizon=8, iterations=4, method=method, seed=seed)
        planner = plan_from(LatentMPPI(skill, config), (0.0, 0.0), (2.0, -1.5))
        costs = planner.plan_info()["nominal_costs"]
        first.append(costs[0])
        last.append(costs[-1])
    first, last = np.array(first), np.array(last)
    assert np.sum(last < first) >= 16
    assert np.mean(1.0 - last / first) >= 0.2


def test_plan_heads_for_the_goal_and_predicts_it():
    skill = LatentSkill(VelocityDynamics())
    planner = plan_from(
        LatentMPPI(skill, MPPIConfig(num_samples=512, iterations=4, seed=0)), (0, 0), (2.0, 1.0)
    )
    info = planner.plan_info()
    first = planner.command(None, 0)
    assert first @ np.array([2.0, 1.0]) > 0.8 * np.linalg.norm(first) * np.sqrt(5)
    assert np.linalg.norm(info["trajectory"][-1] - [2.0, 1.0]) < 0.4
    assert info["mean_plan"].shape == (10, 2)
    assert info["trajectory"].shape == (11, 2)


def test_commands_stay_in_bounds_even_for_unreachable_goals():
    skill = LatentSkill(VelocityDynamics())
    planner = plan_from(
        LatentMPPI(skill, MPPIConfig(num_samples=128, iterations=6, noise_scale=3.0)),
        (0, 0),
        (500.0, -500.0),
    )
    assert np.all(planner.mean >= -1.0) and np.all(planner.mean <= 1.0)
    assert np.all(planner.commands >= -1.0) and np.all(planner.commands <= 1.0)
    heading = planner.mean.mean(axis=0)
    assert heading[0] > 0.3 and heading[1] < -0.3


def test_same_seed_same_plan_and_other_seed_other_plan():
    skill = LatentSkill(VelocityDynamics())

    def plan(seed):
        config = MPPIConfig(num_samples=128, horizon=6, iterations=2, seed=seed)
        return plan_from(LatentMPPI(skill, config), (0.3, -0.2), (1.0, 1.0)).mean.copy()

    np.testing.assert_array_equal(plan(7), plan(7))
    assert not np.array_equal(plan(7), plan(8))


def test_nan_predictions_never_leave_the_planner():
    skill = LatentSkill(VelocityDynamics(nan_above=0.0))  # half of all samples diverge
    planner = plan_from(
        LatentMPPI(skill, MPPIConfig(num_samples=256, iterations=3)), (0, 0), (3.0, 0.0)
    )
    assert np.all(np.isfinite(planner.mean))
    assert np.all(planner.mean[:, 0] <= 0.0 + 1e-6)  # only feasible samples were averaged
    everything_diverges = LatentSkill(VelocityDynamics(nan_above=-2.0))
    planner = plan_from(LatentMPPI(everything_diverges, MPPIConfig(num_samples=64)), (0, 0), (1, 1))
    np.testing.assert_array_equal(planner.mean, 0.0)  # no feasible sample: the plan is kept


class PointPrior(SkillPrior):
    """All mass on one command: prior-guided samples must include it."""

    def __init__(self, command):
        self.command = np.asarray(command, np.float32)

    def sample(self, obs, n, rng):
        return np.tile(self.command, (n, 1))

    def log_prob(self, obs, commands):
        return np.where(np.all(commands == self.command, axis=-1), 0.0, -np.inf)


def test_prior_guided_sampling_uses_the_prior():
    skill = LatentSkill(VelocityDynamics(), prior=PointPrior([0.8, 0.6]))
    config = MPPIConfig(num_samples=64, horizon=5, prior_fraction=0.25, temperature=0.01)
    planner = plan_from(LatentMPPI(skill, config), (0, 0), (1.2, 0.9))
    np.testing.assert_allclose(planner.commands[1:17], np.tile([0.8, 0.6], (16, 5, 1)))
    np.testing.assert_allclose(planner.mean[0], [0.8, 0.6], atol=0.1)


def _learned_skill(seed=0, num_experts=4):
    torch.manual_seed(seed)
    network = SkillDynamicsNet(
        DynamicsNetConfig(state_dim=2, command_dim=2, hidden=(64, 64), num_experts=num_experts)
    )
    network.in_norm.fit(torch.randn(512, 4) * torch.tensor([2.0, 2.0, 0.6, 0.6]))
    network.out_norm.fit(torch.randn(512, 2) * 0.2)
    return LatentSkill(LearnedDynamics(network, (0, 1)))


@pytest.mark.parametrize("num_experts", [0, 4])
def test_numba_and_torch_backends_agree(num_experts):
    skill = _learned_skill(num_experts=num_experts)
    planners = {
        backend: LatentMPPI(
            skill, MPPIConfig(num_samples=256, horizon=6, iterations=2, backend=backend, seed=4)
        )
        for backend in ("numba", "torch")
    }
    for planner in planners.values():
        plan_from(planner, (0.5, -0.5), (1.0, 1.0))
    np.testing.assert_allclose(
        planners["numba"].states, planners["torch"].states, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(planners["numba"].mean, planners["torch"].mean, atol=1e-3)


def test_planner_needs_dynamics(reach_skill):
    class NoDynamics(LatentSkill):
        def __init__(self):
            super().__init__(None)

    with pytest.raises(IncompatibleError, match="offers no dynamics"):
        LatentMPPI(NoDynamics())
    with pytest.raises(IncompatibleError, match="has none"):
        build_goal_follower("mppi", NoDynamics(), np.zeros((1, 2)), (0, 1), SequenceConfig())


def test_warm_start_shifts_the_plan():
    skill = LatentSkill(VelocityDynamics(), hold_steps=5)
    planner = plan_from(LatentMPPI(skill, MPPIConfig(num_samples=64, horizon=4)), (0, 0), (1, 1))
    planner.mean[:] = np.arange(8, dtype=np.float32).reshape(4, 2) / 10
    planner.advance(10)  # two held commands executed
    planner._warm_start()
    np.testing.assert_allclose(planner.mean, [[0.4, 0.5], [0.6, 0.7], [0.6, 0.7], [0.6, 0.7]])


def test_goal_sequence_drives_mppi(reach_skill):
    planner = LatentMPPI(reach_skill, MPPIConfig(num_samples=128))
    sequence = GoalSequence(np.array([[2.0, 0.0]]), (0, 1), delegate=planner)
    sequence.reset(np.zeros(4, np.float32))
    np.testing.assert_array_equal(planner.goal, [2.0, 0.0])

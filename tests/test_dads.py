"""DADS: losses by hand, the intrinsic reward on an analytic case, a short training run, resume."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from skill_library.dads import (
    DADSConfig,
    DADSNetworkConfig,
    DADSTrainer,
    dynamics_loss,
    intrinsic_reward,
)
from skill_library.dads.evaluation import skill_signal
from skill_library.dads.losses import shaped_reward
from skill_library.networks import DynamicsNetConfig, SkillDynamicsNet
from skill_library.replay import ReplayBuffer
from skill_library.sac import SACConfig

LOG_2PI = math.log(2 * math.pi)


def zero_dynamics(num_experts=4, fixed_variance=True):
    """A 2-D skill dynamics whose every component is N(0, I) on s' - s (identity normalizers)."""
    network = SkillDynamicsNet(
        DynamicsNetConfig(2, 2, hidden=(8,), num_experts=num_experts, fixed_variance=fixed_variance)
    )
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.zero_()
    return network


def test_shaped_reward_scores_whole_windows_and_pays_the_bonus_until_a_fall():
    intrinsic = torch.tensor([2.0, -1.0, 3.0, 0.5])
    full = torch.tensor([1.0, 1.0, 0.0, 1.0])
    dones = torch.tensor([0.0, 0.0, 0.0, 1.0])
    rewards = shaped_reward(intrinsic, full, dones, bonus=1.0)
    # whole window, alive: r + 1; partial window: only the bonus; the fall: r, no bonus
    np.testing.assert_allclose(rewards.numpy(), [3.0, 0.0, 1.0, 0.5])
    np.testing.assert_allclose(shaped_reward(intrinsic, full, dones, 0.0).numpy(), [2, -1, 0, 0.5])


def test_dynamics_loss_matches_the_gaussian_log_density():
    network = zero_dynamics()
    batch = {
        "dyn_obs": torch.tensor([[0.0, 0.0], [1.0, 1.0]]),
        "dyn_next_obs": torch.tensor([[1.0, 2.0], [1.0, 1.0]]),
        "skills": torch.zeros(2, 2),
    }
    loss, metrics = dynamics_loss(network, batch)
    # log N((1, 2); 0, I) = -2.5 - log 2pi; log N((0, 0); 0, I) = -log 2pi.
    expected = -((-2.5 - LOG_2PI) + (-LOG_2PI)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert metrics["dynamics_log_likelihood"] == pytest.approx(-expected, rel=1e-6)
    weighted, _ = dynamics_loss(network, {**batch, "weights": torch.tensor([1.0, 0.0])})
    assert weighted.item() == pytest.approx(2.5 + LOG_2PI, rel=1e-6)


def test_learned_variance_enters_the_density():
    network = zero_dynamics(num_experts=1, fixed_variance=False)
    with torch.no_grad():
        network.log_std.bias.fill_(math.log(2.0))  # sigma = 2 in both dimensions
    batch = {
        "dyn_obs": torch.zeros(1, 2),
        "dyn_next_obs": torch.tensor([[2.0, 0.0]]),
        "skills": torch.zeros(1, 2),
    }
    loss, _ = dynamics_loss(network, batch)
    # -log N((2, 0); 0, 4I) = 0.5 * (1 + 0) + 2 log 2 + log 2pi
    assert loss.item() == pytest.approx(0.5 + 2 * math.log(2.0) + LOG_2PI, rel=1e-6)


class ShiftDynamics:
    """q(s' | s, z) = N(s' - s; z, I): the analytic case for the intrinsic reward."""

    def log_prob(self, states, skills, next_states):
        return -0.5 * ((next_states - states - skills) ** 2).sum(-1) - LOG_2PI


def test_intrinsic_reward_on_an_analytic_case():
    states = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    next_states = states + torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    skills = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    alternatives = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    reward = intrinsic_reward(ShiftDynamics(), states, next_states, skills, alternatives)
    # Row 0: log q = -log 2pi; both alternatives are 1 away: log mean q = -0.5 - log 2pi.
    # Row 1: log q = -log 2pi; alternatives 0 and 2 away:
    # log mean q = log((1 + e^-2) / 2) - log 2pi.
    expected = torch.tensor([0.5, -math.log((1 + math.exp(-2.0)) / 2)])
    torch.testing.assert_close(reward, expected)


def test_reward_extremes():
    states = torch.zeros(1, 2)
    skills = torch.tensor([[0.0, 0.0]])
    far = torch.full((50, 2), 100.0)
    reward = intrinsic_reward(ShiftDynamics(), states, states, skills, far)
    assert reward.item() > 1000  # alternatives explain the transition far worse
    same = torch.zeros(50, 2)
    assert intrinsic_reward(ShiftDynamics(), states, states, skills, same).item() == pytest.approx(
        0
    )


def small_config(**changes):
    config = DADSConfig(
        steps=4800,
        num_envs=8,
        episode_length=20,
        dynamics_updates=24,
        sac_updates=48,
        batch_size=128,
        num_alternatives=32,
        networks=DADSNetworkConfig(policy_hidden=(64, 64), dynamics_hidden=(64, 64)),
        sac=SACConfig(learning_rate=1e-3, initial_alpha=0.1),
        checkpoint_every=5,
        seed=3,
    )
    return replace(config, **changes)


def test_short_training_run_learns_predictable_distinct_skills(tmp_path):
    from skill_library.dads.train import evaluate_skills

    config = small_config()
    trainer = DADSTrainer(config, tmp_path / "dads")
    before = evaluate_skills(trainer.make_skill(), config, seed=11)
    path = trainer.train(progress=False, name="tiny-dads")
    history = json.loads((path / "history.json").read_text())
    likelihood = [m["dynamics_log_likelihood_new_data"] for m in history]
    assert np.mean(likelihood[-3:]) > likelihood[0] + 0.3
    after = evaluate_skills(trainer.make_skill(), config, seed=11)
    assert after["end_spread"] > 1.5  # metres between the end states of different z
    assert after["end_spread"] > 3 * after["repeat_spread"]
    assert after["end_spread"] > before["end_spread"]
    manifest = json.loads((path / "skill.json").read_text())
    assert manifest["kind"] == "dads" and manifest["training"]["seed"] == 3
    assert (path / "skills.png").stat().st_size > 10_000
    assert list((path / "tensorboard").glob("events.out.tfevents.*"))


def test_training_resumes_from_its_checkpoint(tmp_path):
    config = small_config(steps=320, checkpoint_every=1, num_envs=4, episode_length=20)
    first = DADSTrainer(config, tmp_path / "run")
    first.train(progress=False)
    resumed = DADSTrainer(replace(config, steps=640), tmp_path / "run")
    resumed.train(resume=True, progress=False)
    assert resumed.iteration == 8 and resumed.steps_done == 640
    pairs = zip(first.learner.policy.parameters(), resumed.learner.policy.parameters(), strict=True)
    assert not all(torch.equal(a, b) for a, b in pairs)  # it kept learning from where it stopped
    with pytest.raises(ValueError, match="different configuration"):
        DADSTrainer(replace(config, latent_dim=3, steps=960), tmp_path / "run").train(resume=True)


def test_off_policy_variant_runs_with_finite_importance_weights(tmp_path):
    config = small_config(steps=320, num_envs=4, off_policy=True, replay_capacity=2000)
    trainer = DADSTrainer(config, tmp_path / "off")
    for _ in range(3):
        metrics = trainer.iterate()
    assert len(trainer.replay) == 240
    assert all(np.isfinite(v) for v in metrics.values())


def test_shipped_dads_dynamics_rolls_out_the_same_in_the_kernels_and_in_torch():
    from hrl_runtime import SkillRegistry
    from planners import LatentMPPI, MPPIConfig

    skill = SkillRegistry().load("dads-pointmass")
    planners = {
        backend: LatentMPPI(
            skill, MPPIConfig(num_samples=256, horizon=10, backend=backend, seed=2), (0, 1)
        )
        for backend in ("numba", "torch")
    }
    for planner in planners.values():
        planner.reset(np.array([1.0, -2.0, 0.3, 0.0], np.float32))
        planner.set_goal(np.array([-3.0, 2.0], np.float32))
        planner.optimize()
    np.testing.assert_allclose(
        planners["numba"].states, planners["torch"].states, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(planners["numba"].mean, planners["torch"].mean, atol=1e-3)


def test_skill_signal_is_the_share_of_the_window_change_z_explains():
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, (4000, 2))
    start = rng.normal(size=(4000, 2))
    full = np.ones(4000)
    # z sets the change exactly: R^2 = 1; noise of the signal's own variance: R^2 = 1/2
    assert skill_signal(start, start + 0.3 * z, z, full) == pytest.approx(1.0)
    noisy = start + z + rng.normal(0, np.sqrt(1 / 3), (4000, 2))  # var(z) = 1/3
    assert skill_signal(start, noisy, z, full) == pytest.approx(0.5, abs=0.03)
    # a change independent of z explains nothing; partial windows do not count
    assert skill_signal(start, start + rng.normal(size=(4000, 2)), z, full) < 0.01
    half = np.r_[np.ones(2000), np.zeros(2000)]
    mixed = np.where(half[:, None] > 0, start + z, start + rng.normal(size=(4000, 2)))
    assert skill_signal(start, mixed, z, half) == pytest.approx(1.0)
    assert np.isnan(skill_signal(start[:3], start[:3], z[:3], full[:3]))


def test_replay_recent_returns_the_last_rows_across_the_wrap():
    replay = ReplayBuffer(5, {"x": ()})
    replay.add(x=np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(replay.recent(3)["x"], [1, 2, 3])
    replay.add(x=np.arange(4, 7, dtype=np.float32))  # wraps: holds 2..6
    np.testing.assert_array_equal(replay.recent(10)["x"], [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(replay.recent(2)["x"], [5, 6])

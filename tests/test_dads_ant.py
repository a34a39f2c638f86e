"""DADS on Ant-v5: a tiny run trains, checkpoints, resumes and packages skills that load, act and
plan through the kernels; goal following on Ant samples goals 3-8 m from the start, uses a 1 m
radius, and counts a fall as a failed goal before going on with the next."""

from __future__ import annotations

import json
from dataclasses import replace

import gymnasium
import numpy as np
import pytest

import envs
from hrl_runtime.experiments.follow import FollowConfig, follow_goals
from skill_library.dads.config import ANT_QPOS_QVEL, DADSNetworkConfig, ant_preset
from skill_library.sac.config import SACConfig


def tiny_ant_config(**changes):
    """The Ant preset shrunk to seconds: 2 environments (one in a worker), 20-step episodes."""
    config = replace(
        ant_preset(),
        steps=80,
        num_envs=2,
        env_workers=1,
        episode_length=20,
        dynamics_updates=2,
        sac_updates=2,
        batch_size=32,
        num_alternatives=8,
        relabel_pool=64,
        replay_capacity=1000,
        checkpoint_every=1,
        sac=SACConfig(initial_alpha=0.1, learn_alpha=False, hidden=(16, 16)),
        networks=DADSNetworkConfig(policy_hidden=(16, 16), dynamics_hidden=(16, 16)),
        seed=5,
    )
    return replace(config, **changes)


@pytest.fixture(scope="module")
def ant_package(tmp_path_factory):
    """A tiny DADS-on-Ant package, trained in two sessions (the second resumed)."""
    from skill_library.dads.train import DADSTrainer

    out = tmp_path_factory.mktemp("dads-ant") / "tiny-ant"
    first = DADSTrainer(tiny_ant_config(), out)
    first.train(progress=False, name="tiny-ant")
    resumed = DADSTrainer(tiny_ant_config(steps=160), out)
    path = resumed.train(resume=True, progress=False, name="tiny-ant")
    return path, first, resumed


def test_ant_preset_holds_the_authors_settings_scaled_to_the_machine():
    config = ant_preset()
    config.validate()
    assert config.env_id == "Ant-v5" and config.latent_dim == 2 and config.action_repeat == 1
    assert config.episode_length == 200 and config.batch_size == 256 and config.off_policy
    assert config.sac.initial_alpha == 0.1 and not config.sac.learn_alpha
    assert config.sac.learning_rate == 3e-4 and config.dynamics_lr == 3e-4
    assert config.networks.num_experts == 4 and config.networks.fixed_variance
    assert config.dynamics_dims == (0, 1) and config.hide_dynamics_dims


def test_tiny_ant_run_checkpoints_resumes_and_reports_falls(ant_package):
    path, first, resumed = ant_package
    assert first.iteration >= 2 and resumed.iteration > first.iteration
    assert resumed.steps_done >= 160
    history = json.loads((path / "history.json").read_text())
    assert len(history) == resumed.iteration  # the resumed run kept the first session's history
    for metrics in history:
        assert 0.0 <= metrics["fall_rate"] <= 1.0
        assert 0 < metrics["episode_steps"] <= 20
        assert np.isfinite(metrics["displacement_spread"])
        assert 0.0 <= metrics["skill_r2"] <= 1.0
    manifest = json.loads((path / "skill.json").read_text())
    # one planning step holds z for the dynamics' 10-step window of single control steps
    assert manifest["kind"] == "dads" and manifest["hold_steps"] == 10
    assert manifest["training"]["config"]["env_id"] == "Ant-v5"
    assert 0.0 <= manifest["metrics"]["grid_fall_rate"] <= 1.0


def test_ant_skill_loads_acts_without_seeing_xy_or_contact_forces(ant_package):
    from hrl_runtime.registry import load_skill

    skill = load_skill(path := ant_package[0])
    assert skill.name == "tiny-ant" and skill.hold_steps == 10
    indices = skill.config.policy_obs_indices
    assert 0 not in indices and 1 not in indices and max(indices) < len(ANT_QPOS_QVEL)
    env = envs.make_env("Ant-v5", max_episode_steps=10)
    obs, _ = env.reset(seed=0)
    skill.reset()
    action = skill.act(obs, np.array([0.5, -0.5], np.float32))
    assert action.shape == (8,) and env.action_space.contains(action.astype(np.float32))
    moved = obs.copy()
    moved[:2] += 5.0  # the policy does not depend on where the torso is
    np.testing.assert_allclose(
        skill.act_batch(obs[None], np.zeros((1, 2))), skill.act_batch(moved[None], np.zeros((1, 2)))
    )
    assert (path / "skills.png").stat().st_size > 5_000


def test_ant_skill_dynamics_plans_the_same_in_the_kernels_and_in_torch(ant_package):
    from hrl_runtime.registry import load_skill
    from planners import LatentMPPI, MPPIConfig

    skill = load_skill(ant_package[0])
    assert skill.dynamics.export_mlp()["head"] == "mog"  # the 4-expert mixture, as the kernel reads
    obs, _ = envs.make_env("Ant-v5", max_episode_steps=10).reset(seed=1)
    planners = {
        backend: LatentMPPI(
            skill, MPPIConfig(num_samples=128, horizon=8, backend=backend, seed=2), (0, 1)
        )
        for backend in ("numba", "torch")
    }
    for planner in planners.values():
        planner.reset(obs)
        planner.set_goal(np.array([4.0, -3.0], np.float32))
        planner.optimize()
    np.testing.assert_allclose(
        planners["numba"].states, planners["torch"].states, rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(planners["numba"].mean, planners["torch"].mean, atol=1e-3)


def test_collected_windows_span_k_steps_of_one_held_skill():
    """Transition t's window starts at s_{t+1-k} while that lies inside the span the current
    skill has been held; earlier ones are partial (flagged, with the span's first state)."""
    from skill_library.dads.train import DADSTrainer

    config = tiny_ant_config(num_envs=1, env_workers=0, episode_length=12, skill_hold=6)
    trainer = DADSTrainer(replace(config, dynamics_horizon=3), "unused")
    try:
        columns, _ = trainer.collect()
    finally:
        trainer.close()
    steps = len(columns["obs"])
    xy = np.concatenate([columns["obs"][:1, :2], columns["next_obs"][:, :2]])  # s_0 .. s_T
    for t in range(steps):
        segment = 6 * (t // 6)
        begin = t + 1 - 3
        assert columns["window_full"][t] == float(begin >= segment)
        np.testing.assert_array_equal(columns["window_start"][t], xy[max(begin, segment)])
    if steps > 6:  # a new skill after 6 steps
        assert not np.array_equal(columns["skills"][5], columns["skills"][6])
        assert columns["window_full"][6] == 0 and columns["window_full"][8] == 1


def test_a_dads_package_whose_hold_is_not_repeat_times_horizon_is_refused(ant_package, tmp_path):
    import shutil

    from hrl_runtime.errors import PackageError
    from hrl_runtime.registry import load_skill

    copy = tmp_path / "tampered"
    shutil.copytree(ant_package[0], copy)
    manifest = json.loads((copy / "skill.json").read_text())
    manifest["config"]["skill"]["dynamics_horizon"] = 4
    (copy / "skill.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="dynamics_horizon differs from hold_steps"):
        load_skill(copy)


def test_random_ant_goals_lie_3_to_8_m_from_the_start():
    env = envs.make_env("Ant-v5", max_episode_steps=10)
    space = envs.goal_space(env)
    goals = space.sample(np.random.default_rng(0), 2000)
    distance = np.linalg.norm(goals, axis=1)
    assert distance.min() >= 3.0 and distance.max() <= 8.0
    assert all(space.contains(goal) for goal in goals[:50])
    start, _ = env.reset(seed=3)
    assert np.linalg.norm(start[:2]) < 0.2  # the start pose is the origin (plus reset noise)
    angles = np.arctan2(goals[:, 1], goals[:, 0])
    assert np.histogram(angles, 4)[0].min() > 400  # every direction
    assert envs.success_radius("Ant-v5") == 1.0 and envs.success_radius("hrl/PointArena-v0") == 0.5


def test_follow_on_ant_reports_radius_falls_and_goals_from_the_start(ant_package, capsys):
    from hrl_runtime.cli import main

    code = main(
        ["follow", "--skill", str(ant_package[0]), "--env", "Ant-v5", "--planner", "mppi",
         "--random-goals", "2", "--seed", "4", "--max-steps", "15", "--sync", "--json"]
    )  # fmt: skip
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["success_radius"] == 1.0 and payload["faults"] == 0
    assert payload["falls"] == sum(goal["fell"] for goal in payload["goals"])
    assert payload["resets"] == 1  # Ant's goals are each attempted from the start pose
    for goal in payload["goals"]:
        assert 3.0 <= np.linalg.norm(goal["goal"]) <= 8.0
        assert 0 < goal["steps"] <= 15


class TrapDoor(gymnasium.Wrapper):
    """A plant that 'falls' (terminates) whenever its x-y comes within 0.7 m of ``trap``."""

    def __init__(self, env, trap):
        super().__init__(env)
        self.trap = np.asarray(trap)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        fell = np.linalg.norm(obs[:2] - self.trap) < 0.7
        return obs, reward, bool(terminated or fell), truncated, info


@pytest.mark.parametrize("reset_each_goal", [False, True])
def test_a_fall_fails_its_goal_and_the_run_goes_on(reach_skill, reset_each_goal):
    from planners import SequenceConfig, build_goal_follower

    goals = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    env = TrapDoor(envs.make_env("hrl/PointArena-v0", max_episode_steps=2000), goals[1])
    sequence = SequenceConfig(0.5, 600)

    def make(part):
        return build_goal_follower("sequence", reach_skill, part, (0, 1), sequence, seed=0)

    config = FollowConfig(
        success_radius=0.5, steps_per_goal=600, asynchronous=False, reset_each_goal=reset_each_goal
    )
    report = follow_goals(
        reach_skill, make(goals), env, env_id="hrl/PointArena-v0", planner="sequence",
        goals=goals, xy_indices=(0, 1), config=config, control_period_s=0.01,
        make_high_level=make,
    )  # fmt: skip
    payload = report.to_json()
    assert [goal["reached"] for goal in payload["goals"]] == [True, False, True]
    assert [goal["fell"] for goal in payload["goals"]] == [False, True, False]
    assert payload["falls"] == 1 and payload["success_rate"] == pytest.approx(2 / 3)
    assert payload["resets"] == (2 if reset_each_goal else 1)
    fall = report.trajectory[report.fall_indices[0]]
    assert np.linalg.norm(fall - goals[1]) < 0.7
    # one record of every segment: each began with its own reset observation
    assert len(report.loop.observations) == report.loop.steps + len(report.segment_starts)


def test_the_ant_demo_tours_four_goals_on_one_path(ant_package, tmp_path, monkeypatch, capsys):
    import shutil

    from hrl_runtime.cli import main
    from hrl_runtime.cli.follow import DEMO_ANT_GOALS

    skills = tmp_path / "skills"
    shutil.copytree(ant_package[0], skills / "dads-ant")
    manifest = json.loads((skills / "dads-ant" / "skill.json").read_text())
    manifest["name"] = "dads-ant"
    (skills / "dads-ant" / "skill.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("HRL_SKILLS_PATH", str(skills))
    out = tmp_path / "demo"
    assert main(["demo", "--scenario", "ant", "--sync", "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    tour = [[float(v) for v in goal.split(",")] for goal in DEMO_ANT_GOALS.split(";")]
    assert [goal["goal"] for goal in payload["goals"]] == tour
    assert payload["skill"] == "dads-ant" and payload["success_radius"] == 1.0
    assert payload["resets"] == payload["falls"]  # one path: only a fall resets the body
    assert (out / "demo.png").stat().st_size > 10_000


def test_without_terminate_on_fall_a_fallen_ant_keeps_stepping_and_counts_as_fallen():
    from skill_library.dads.environments import SkillEnvs

    config = tiny_ant_config(terminate_on_fall=False)
    skill_envs = SkillEnvs(config, np.random.default_rng(0))  # one env here, one in a worker
    try:
        skill_envs.reset()
        zero = np.zeros((2, 8), np.float32)
        _, dones, fallen = skill_envs.step(zero)
        assert not dones.any() and not fallen.any()
        env = skill_envs.batch.local.envs[0].unwrapped  # lift its torso above 1.0 m
        qpos = env.data.qpos.copy()
        qpos[2] = 1.5
        env.set_state(qpos, env.data.qvel.copy())
        _, dones, fallen = skill_envs.step(zero)
        assert fallen.tolist() == [True, False]
        assert not dones.any() and skill_envs.alive.all()  # the episode goes on
    finally:
        skill_envs.close()


def test_terminate_on_fall_false_is_refused_where_there_is_no_healthy_range():
    from hrl_runtime.errors import ConfigError
    from skill_library.dads.config import DADSConfig

    with pytest.raises(ConfigError, match="terminate_on_fall=False needs an environment"):
        DADSConfig(terminate_on_fall=False).validate()
    tiny_ant_config(terminate_on_fall=False).validate()

"""The goal-conditioned SAC baseline: the dense distance reward, which steps bootstrap, and a
tiny Ant-v5 run that checkpoints, resumes and packages a goal-commanded ``gcsac`` skill."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from hrl_runtime.cli import main
from hrl_runtime.errors import ConfigError, PackageError
from hrl_runtime.registry import load_skill
from skill_library.gcsac.config import GCSACConfig
from skill_library.gcsac.train import GCSACTrainer, dense_reward, episode_ends
from skill_library.sac.config import SACConfig


def tiny_gcsac_config(**changes) -> GCSACConfig:
    """The Ant baseline shrunk to seconds: 2 environments, 20-step episodes, 16-wide nets."""
    config = GCSACConfig(
        steps=40,
        num_envs=2,
        episode_length=20,
        batch_size=32,
        replay_capacity=1000,
        checkpoint_every=1,
        sac=SACConfig(initial_alpha=0.1, learn_alpha=False, hidden=(16, 16)),
        eval_episodes=2,
        seed=7,
    )
    return replace(config, **changes)


def train_tiny_gcsac(out, name="tiny-gcsac"):
    """A tiny package trained in two sessions (the second resumed to twice the steps)."""
    first = GCSACTrainer(tiny_gcsac_config(), out)
    first.train(progress=False, name=name)
    resumed = GCSACTrainer(tiny_gcsac_config(steps=80), out)
    path = resumed.train(resume=True, progress=False, name=name)
    return path, first, resumed


@pytest.fixture(scope="module")
def gcsac_package(tmp_path_factory):
    return train_tiny_gcsac(tmp_path_factory.mktemp("gcsac") / "tiny-gcsac")


def test_defaults_match_the_dads_ant_preset():
    from skill_library.dads.config import ANT_QPOS_QVEL, ant_preset

    config, dads = GCSACConfig(), ant_preset()
    config.validate()
    assert config.env_id == dads.env_id == "Ant-v5" and config.steps == dads.steps
    assert config.sac == dads.sac and config.sac.hidden == (128, 128)
    assert not config.sac.learn_alpha and config.sac.initial_alpha == 0.1
    assert config.batch_size == dads.batch_size and config.episode_length == dads.episode_length
    assert config.sac_updates_per_step == dads.sac_updates_per_step
    assert config.policy_obs_dims == ANT_QPOS_QVEL and config.healthy_reward == 1.0
    assert GCSACConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


def test_dense_reward_worked_example():
    # dt = 0.05 s. Env 0 closes 5 cm: 1 m/s of progress + 1 healthy = 2.0. Env 1 backs off
    # 2 cm: -0.4 + 1 = 0.6. Env 2 closes 1 cm but falls: 0.2 and no healthy reward.
    rewards = dense_reward(
        np.array([5.0, 3.0, 4.0]),
        np.array([4.95, 3.02, 3.99]),
        np.array([False, False, True]),
        dt=0.05,
    )
    np.testing.assert_allclose(rewards, [2.0, 0.6, 0.2], atol=1e-5)
    assert rewards.dtype == np.float32
    weighted = dense_reward(np.array([5.0]), np.array([4.95]), np.array([0.0]), 0.05, 0.5, 2.0)
    np.testing.assert_allclose(weighted, [2.0 * 1.0 + 0.5], atol=1e-5)


def test_only_a_fall_is_terminal_success_and_time_limit_bootstrap():
    config = tiny_gcsac_config(episode_length=20, success_radius=1.0)
    terminated = np.array([True, False, False, True])
    distance = np.array([5.0, 0.8, 4.0, 0.5])  # env 3 fell within the radius: a fall
    dones, success, ended = episode_ends(terminated, distance, step=3, config=config)
    assert dones.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert success.tolist() == [False, True, False, False]
    assert ended.tolist() == [True, True, False, True]
    dones, success, ended = episode_ends(np.zeros(4, bool), distance + 2, 19, config)
    assert dones.tolist() == [0.0] * 4 and not success.any() and ended.all()  # time limit


def test_collect_records_one_transition_per_live_step_and_dones_only_for_falls(tmp_path):
    trainer = GCSACTrainer(tiny_gcsac_config(episode_length=12), tmp_path / "collect")
    try:
        data, stats = trainer.collect()
    finally:
        trainer.close()
    count = len(data["rewards"])
    assert count == round(stats["episode_steps"] * 2) and 2 <= count <= 24
    assert data["obs"].shape == (count, 27 + 2)  # qpos+qvel without x-y, then g - xy
    assert set(np.unique(data["dones"])) <= {0.0, 1.0}
    assert data["dones"].sum() == round(stats["fall_rate"] * 2)
    # consecutive transitions chain: next_obs of step t is obs of step t + 1 (same goal)
    np.testing.assert_allclose(data["next_obs"][0], data["obs"][2], atol=1e-6)
    assert 0.0 <= stats["success_rate"] <= 1.0 and stats["normalized_distance"] > 0


def test_tiny_run_checkpoints_resumes_and_packages(gcsac_package):
    path, first, resumed = gcsac_package
    assert first.iteration == 1 and resumed.iteration >= 2 and resumed.steps_done >= 80
    assert (path / "checkpoint").is_dir()
    history = json.loads((path / "history.json").read_text())
    assert len(history) == resumed.iteration  # the first session's history was kept
    manifest = json.loads((path / "skill.json").read_text())
    assert manifest["kind"] == "gcsac" and manifest["hold_steps"] == 1
    assert manifest["training"]["config"]["env_id"] == "Ant-v5"
    assert manifest["metrics"]["steps"] == resumed.steps_done
    assert 0.0 <= manifest["metrics"]["eval_success_rate"] <= 1.0


def test_resume_refuses_another_configuration(gcsac_package, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(gcsac_package[0], copy)
    trainer = GCSACTrainer(tiny_gcsac_config(steps=120, seed=8), copy)
    with pytest.raises(ConfigError, match="seed"):
        trainer.train(resume=True, progress=False, name="tiny-gcsac")


def test_package_loads_by_path_verifies_and_acts_on_relative_goals(gcsac_package):
    import envs

    skill = load_skill(str(gcsac_package[0]))
    assert skill.kind == "gcsac" and skill.command_is_goal and skill.command_space.shape == (2,)
    assert main(["skills", "verify", str(gcsac_package[0])]) == 0
    env = envs.make_env("Ant-v5", max_episode_steps=10)
    obs, _ = env.reset(seed=0)
    goal = np.array([4.0, -3.0], np.float32)
    action = skill.act(obs, goal)
    assert action.shape == env.action_space.shape and env.action_space.contains(action)
    np.testing.assert_allclose(skill.act_batch(obs[None], goal[None])[0], action, atol=1e-6)
    # the policy sees the goal relative to the torso: moving both by the same offset is moot
    offset = np.array([2.5, -1.0], np.float32)
    shifted = obs.copy()
    shifted[:2] += offset
    np.testing.assert_allclose(skill.act(shifted, goal + offset), action, atol=1e-5)
    assert not np.allclose(skill.act(obs, -goal), action)
    env.close()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.update(policy_obs_indices=[0, *s["policy_obs_indices"]]), "xy_indices"),
        (lambda s: s.update(xy_indices=[1, 1]), "two different"),
        (lambda s: s.update(policy_hidden=[32, 32]), "policy"),
        (lambda s: s.update(goal_extent=-1), "goal_extent"),
    ],
)
def test_check_package_refuses_a_tampered_config(gcsac_package, tmp_path, edit, message):
    copy = tmp_path / "tampered"
    shutil.copytree(gcsac_package[0], copy)
    manifest = json.loads((copy / "skill.json").read_text())
    edit(manifest["config"]["skill"])
    (copy / "skill.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match=message):
        load_skill(copy)


def test_check_package_refuses_a_held_command(gcsac_package, tmp_path):
    copy = tmp_path / "held"
    shutil.copytree(gcsac_package[0], copy)
    manifest = json.loads((copy / "skill.json").read_text())
    manifest["hold_steps"] = 10
    (copy / "skill.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="hold_steps must be 1"):
        load_skill(copy)


def test_train_cli_checks_its_output_before_training(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["train", "gcsac", "--steps", "10", "--out", str(target)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["train", "gcsac", "--steps", "0", "--out", str(tmp_path / "new")]) == 2
    assert main(["train", "gcsac", "--steps-of", str(tmp_path), "--out", str(tmp_path / "n")]) == 2
    assert "--steps-of" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()


def test_steps_of_reads_the_steps_a_package_trained(gcsac_package):
    from hrl_runtime.cli.gcsac import steps_of

    assert steps_of(str(gcsac_package[0])) == gcsac_package[2].steps_done

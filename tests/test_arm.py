"""hrl/ArmReach-v0: kinematics, tasks given at reset, reward, options and goal following."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from envs.arm import ARM_SUCCESS_RADIUS, GOAL_ANNULUS, HOME, TARGETS, ArmConfig

ARM = "hrl/ArmReach-v0"


def _forward_kinematics(angles: np.ndarray, config: ArmConfig) -> np.ndarray:
    shoulder, elbow = angles
    return config.upper_length * np.array(
        [np.cos(shoulder), np.sin(shoulder)]
    ) + config.fore_length * np.array([np.cos(shoulder + elbow), np.sin(shoulder + elbow)])


@pytest.mark.parametrize("angles", [(0.0, 0.0), (0.3, -1.2), (-2.5, 2.0), (3.0, 0.7)])
def test_observation_is_the_fingertip_and_the_joint_angles(angles):
    env = envs.make_env(ARM)
    obs, info = env.reset(seed=0, options={"joint_angles": angles})
    expected = _forward_kinematics(np.array(angles), env.unwrapped.config)
    np.testing.assert_allclose(obs[:2], expected, atol=1e-5)
    np.testing.assert_allclose(info["xy"], expected, atol=1e-6)
    np.testing.assert_allclose(
        obs[2:6],
        [np.cos(angles[0]), np.sin(angles[0]), np.cos(angles[1]), np.sin(angles[1])],
        atol=1e-6,
    )
    np.testing.assert_array_equal(obs[6:], [0.0, 0.0])


def test_the_task_is_given_at_reset_and_sets_the_reward():
    env = envs.make_env(ARM)
    for task in range(len(TARGETS)):
        obs, info = env.reset(seed=1, options={"task": task})
        assert env.unwrapped.task == task == info["task"]
        np.testing.assert_allclose(info["target"], TARGETS[task])
        # the task is not observed: the same pose observes the same whatever the task
        same_pose, _ = env.reset(seed=1, options={"task": task, "joint_angles": (0.2, 0.4)})
        other, _ = env.reset(seed=1, options={"task": 15 - task, "joint_angles": (0.2, 0.4)})
        np.testing.assert_array_equal(same_pose, other)
        obs, info = env.reset(seed=1, options={"task": task})
        obs, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        assert reward == pytest.approx(-np.linalg.norm(obs[:2] - TARGETS[task]), abs=1e-5)
        assert not terminated and not truncated
    # without the option the task is drawn from the seeded generator
    tasks = {env.reset(seed=seed)[1]["task"] for seed in range(80)}
    assert tasks == set(range(16))
    assert env.reset(seed=3)[1]["task"] == env.reset(seed=3)[1]["task"]


def test_targets_lie_in_the_goal_annulus_and_home_is_inside():
    radii = np.linalg.norm(TARGETS, axis=1)
    # tasks 0-7 alternate between the rings; tasks 8-15 are the other ring at the same angles
    np.testing.assert_allclose(radii[:8], [0.55, 0.95] * 4)
    np.testing.assert_allclose(radii[8:], [0.95, 0.55] * 4)
    angles = np.arctan2(TARGETS[:, 1], TARGETS[:, 0])
    np.testing.assert_allclose(np.cos(angles[:8] - angles[8:]), 1.0)
    assert np.all((radii >= GOAL_ANNULUS[0]) & (radii <= GOAL_ANNULUS[1]))
    home = _forward_kinematics(HOME, ArmConfig())
    assert GOAL_ANNULUS[0] < np.linalg.norm(home) < GOAL_ANNULUS[1]
    env = envs.make_env(ARM)
    space = envs.goal_space(env)
    goals = space.sample(np.random.default_rng(0), 200)
    assert np.all(np.linalg.norm(goals, axis=1) <= GOAL_ANNULUS[1] + 1e-9)
    assert envs.success_radius(ARM) == ARM_SUCCESS_RADIUS == 0.1
    assert envs.episode_steps(ARM) == 200
    assert envs.xy_indices(env) == (0, 1)


def test_torques_turn_the_arm_the_way_they_push():
    env = envs.make_env(ARM)
    env.reset(seed=0, options={"joint_angles": (0.0, 0.0)})
    for _ in range(25):
        obs, *_ = env.step(np.array([1.0, 0.0], np.float32))
    assert obs[6] > 0.5 and np.arctan2(obs[3], obs[2]) > 0.05  # shoulder turned counterclockwise
    env.reset(seed=0, options={"joint_angles": (0.0, 0.0)})
    for _ in range(25):
        obs, *_ = env.step(np.array([-1.0, 0.0], np.float32))
    assert obs[6] < -0.5 and np.arctan2(obs[3], obs[2]) < -0.05


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"task": 16}, "task=16"),
        ({"task": 1.5}, "integer"),
        ({"joint_angles": (0.0, 3.0)}, "elbow"),
        ({"joint_angles": (0.0,)}, "joint_angles"),
        ({"speed": 1}, "unknown options"),
    ],
)
def test_bad_reset_options_are_refused(options, words):
    env = envs.make_env(ARM)
    with pytest.raises(ValueError, match=words):
        env.reset(seed=0, options=options)


def test_goal_following_scores_the_fingertip():
    env = envs.GoalFollowing(envs.make_env(ARM), success_radius=ARM_SUCCESS_RADIUS)
    obs, info = env.reset(seed=0, options={"goal": (0.0, 0.8)})
    assert info["distance"] == pytest.approx(np.linalg.norm(obs[:2] - [0.0, 0.8]), abs=1e-5)
    obs, info = env.reset(seed=0, options={"goal": tuple(obs[:2] + np.array([0.05, 0.0]))})
    assert info["success"]

"""Tests for envs/datasets.py, envs/collect.py and envs/far_goal.py: the trajectory format, its
refusals, the scripted collector, and the far-goal sparse task."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from envs import goal_space, make_env, xy_indices
from envs.collect import CollectConfig, WaypointFollower, collect_dataset
from envs.datasets import DatasetError, TrajectoryDataset, load_dataset
from envs.far_goal import bfs_cell_distances, farthest_cell
from envs.layout import MazeLayout

SMALL = """
#####
#S..#
#.#.#
#..G#
#####
"""


def _toy_dataset(goals: bool = True) -> TrajectoryDataset:
    """Two episodes, L = 3 and 2, with values that encode (episode, step)."""
    lengths = np.array([3, 2])
    obs = np.array(
        [
            [10 * e + t, -(10 * e + t), 0.5, 0.25]
            for e, n in enumerate(lengths)
            for t in range(n + 1)
        ],
        dtype=np.float32,
    )
    actions = np.array(
        [[10 * e + t, 0.1 * t] for e, n in enumerate(lengths) for t in range(n)], dtype=np.float32
    )
    return TrajectoryDataset(
        observations=obs,
        actions=actions,
        episode_lengths=lengths,
        goals=np.array([[1.0, 2.0], [3.0, 4.0]], np.float32) if goals else None,
        env_id="hrl/PointMaze-v0",
        action_repeat=10,
        seed=7,
        collector={"episodes": 2, "kp": 1.5, "max_goal_distance_cells": None},
        created_by="tests/test_datasets.py",
    )


@pytest.fixture(scope="module")
def collected() -> tuple[CollectConfig, TrajectoryDataset]:
    config = CollectConfig(episodes=10, seed=3)
    return config, collect_dataset(config, progress=False)


# --------------------------------------------------------------------------------- format


@pytest.mark.parametrize("goals", [True, False])
def test_round_trip_keeps_arrays_and_metadata(tmp_path: Path, goals: bool) -> None:
    dataset = _toy_dataset(goals)
    path = dataset.save(tmp_path / "sub" / "toy.h5")
    loaded = load_dataset(path, env_id="hrl/PointMaze-v0", obs_dim=4, action_dim=2)
    for name in ("observations", "actions", "episode_lengths"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(dataset, name))
        assert getattr(loaded, name).dtype == getattr(dataset, name).dtype
    if goals:
        np.testing.assert_array_equal(loaded.goals, dataset.goals)
    else:
        assert loaded.goals is None
    assert (loaded.env_id, loaded.action_repeat, loaded.seed) == ("hrl/PointMaze-v0", 10, 7)
    assert loaded.collector == dataset.collector
    assert loaded.created_by == "tests/test_datasets.py"
    assert loaded.num_episodes == 2 and loaded.num_steps == 5
    with h5py.File(path, "r") as file:
        assert file.attrs["format"] == "hrl-runtime/trajectories"
        assert file.attrs["format_version"] == 1
        assert json.loads(file.attrs["collector"])["kp"] == 1.5
        assert file["episode_lengths"].dtype == np.int64
    # No temporary file is left behind by the atomic write.
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.h5"]


def test_episode_and_transitions() -> None:
    dataset = _toy_dataset()
    obs, actions = dataset.episode(1)
    np.testing.assert_array_equal(obs[:, 0], [10, 11, 12])
    np.testing.assert_array_equal(actions[:, 0], [10, 11])
    obs_last, _ = dataset.episode(-1)
    np.testing.assert_array_equal(obs_last, obs)
    with pytest.raises(IndexError, match="has 2 episodes"):
        dataset.episode(2)
    batch = dataset.transitions()
    np.testing.assert_array_equal(batch["episode_index"], [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(batch["obs"][:, 0], [0, 1, 2, 10, 11])
    np.testing.assert_array_equal(batch["next_obs"][:, 0], [1, 2, 3, 11, 12])
    np.testing.assert_array_equal(batch["actions"], dataset.actions)


def test_action_sequences_windows() -> None:
    dataset = _toy_dataset()
    obs_start, actions, obs_seq = dataset.action_sequences(2)
    # Episode 0 (L=3) has windows at steps 0, 1; episode 1 (L=2) at step 0.
    assert obs_start.shape == (3, 4) and actions.shape == (3, 2, 2) and obs_seq.shape == (3, 3, 4)
    np.testing.assert_array_equal(obs_start[:, 0], [0, 1, 10])
    np.testing.assert_array_equal(actions[:, :, 0], [[0, 1], [1, 2], [10, 11]])
    np.testing.assert_array_equal(obs_seq[:, :, 0], [[0, 1, 2], [1, 2, 3], [10, 11, 12]])
    # Hand-check the middle window in full.
    np.testing.assert_array_equal(actions[1], np.array([[1, 0.1], [2, 0.2]], np.float32))
    np.testing.assert_array_equal(obs_seq[1, -1], [3, -3, 0.5, 0.25])
    np.testing.assert_array_equal(obs_seq[:, 0], obs_start)
    # H = 3 fits only episode 0; H = 4 fits nothing.
    assert dataset.action_sequences(3)[1].shape == (1, 3, 2)
    starts, acts, seqs = dataset.action_sequences(4)
    assert starts.shape == (0, 4) and acts.shape == (0, 4, 2) and seqs.shape == (0, 5, 4)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        dataset.action_sequences(0)


def test_constructor_rejects_inconsistent_arrays() -> None:
    dataset = _toy_dataset()
    with pytest.raises(DatasetError, match="sum\\(episode_lengths\\) = 6 but there are 5"):
        TrajectoryDataset(
            dataset.observations, dataset.actions, np.array([3, 3]), "hrl/PointMaze-v0", 10, 0
        )


# ------------------------------------------------------------------------------- refusals


def _edit(path: Path, change: Callable[[h5py.File], None]) -> Path:
    with h5py.File(path, "r+") as file:
        change(file)
    return path


def _replace(name: str, value: np.ndarray) -> Callable[[h5py.File], None]:
    def change(file: h5py.File) -> None:
        del file[name]
        file.create_dataset(name, data=value)

    return change


def _set_attr(name: str, value: object) -> Callable[[h5py.File], None]:
    def change(file: h5py.File) -> None:
        file.attrs[name] = value

    return change


def _delete(name: str, attr: bool = False) -> Callable[[h5py.File], None]:
    def change(file: h5py.File) -> None:
        if attr:
            del file.attrs[name]
        else:
            del file[name]

    return change


_OBS = _toy_dataset().observations
_ACTIONS = _toy_dataset().actions


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set_attr("format", "d4rl"), r"not an hrl-runtime trajectory dataset.*'d4rl'"),
        (_set_attr("format_version", 2), "has format_version 2 but this code reads version 1"),
        (_delete("seed", attr=True), r"missing root attribute\(s\) \['seed'\]"),
        (_set_attr("collector", "{not json"), "'collector' is not valid JSON"),
        (_delete("actions"), "missing dataset 'actions'"),
        (
            _replace("actions", _ACTIONS.astype(np.float64)),
            "'actions' is float64.*expected float32",
        ),
        (_replace("observations", _OBS.ravel()), r"'observations' is float32 with shape \(28,\)"),
        (_replace("actions", _ACTIONS[:4]), r"sum\(episode_lengths\) = 5 but there are 4 actions"),
        (
            _replace("observations", _OBS[:-1]),
            r"need sum\(L \+ 1\) = 7 observations but there are 6",
        ),
        (_replace("episode_lengths", np.array([5, 0])), "must all be >= 1; episodes \\[1\\]"),
        (
            _replace("observations", np.where(np.arange(7)[:, None] == 4, np.nan, _OBS)),
            "observations holds non-finite values.*first at row 4",
        ),
        (_replace("goals", np.zeros((3, 2), np.float32)), r"goals must have shape \(E, 2\)"),
    ],
)
def test_load_refuses_malformed_content(
    tmp_path: Path, change: Callable[[h5py.File], None], message: str
) -> None:
    path = _edit(_toy_dataset().save(tmp_path / "bad.h5"), change)
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(path)
    assert str(path) in str(caught.value)


def test_load_refuses_missing_non_hdf5_and_pickle_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"missing\.h5'.*no such file.*hrl collect"):
        load_dataset(tmp_path / "missing.h5")
    text = tmp_path / "notes.h5"
    text.write_text("episode,step,x,y\n0,0,1.0,2.0\n")
    with pytest.raises(DatasetError, match=r"notes\.h5'.*is not an HDF5 file"):
        load_dataset(text)
    pickled = tmp_path / "data.pkl"
    pickled.write_bytes(pickle.dumps({"observations": np.zeros((3, 4))}))
    with pytest.raises(DatasetError, match=r"not an HDF5 file.*looks like a Python pickle"):
        load_dataset(pickled)
    with pytest.raises(DatasetError, match="not a regular file"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_load_refuses_truncated_file(tmp_path: Path, keep: float) -> None:
    path = _toy_dataset().save(tmp_path / "cut.h5")
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data))])
    with pytest.raises(DatasetError, match=r"cut\.h5'.*truncated or corrupt.*copy it again"):
        load_dataset(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"env_id": "hrl/PointArena-v0"},
            "collected on hrl/PointMaze-v0 but hrl/PointArena-v0 was requested; collect a new "
            "one with `hrl collect --env hrl/PointArena-v0 ...`",
        ),
        ({"obs_dim": 6}, "observations of dimension 4 .* but 6 was requested"),
        ({"action_dim": 3}, "actions of dimension 2 .* but 3 was requested"),
    ],
)
def test_load_refuses_unexpected_env_or_dims(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    path = _toy_dataset().save(tmp_path / "maze.h5")
    with pytest.raises(DatasetError, match=message):
        load_dataset(path, **kwargs)


# ------------------------------------------------------------------------------ collector


def test_collector_is_deterministic() -> None:
    config = CollectConfig(episodes=3, seed=11, max_steps_per_episode=40)
    first = collect_dataset(config, progress=False)
    second = collect_dataset(config, progress=False)
    for name in ("observations", "actions", "episode_lengths", "goals"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    other = collect_dataset(CollectConfig(episodes=3, seed=12, max_steps_per_episode=40), False)
    assert not np.array_equal(first.goals, other.goals)
    assert first.collector["seed"] == 11 and first.action_repeat == 10


def test_collected_data_is_valid_and_reaches_goals(
    collected: tuple[CollectConfig, TrajectoryDataset], tmp_path: Path
) -> None:
    config, dataset = collected
    layout = MazeLayout.load("maze")
    assert dataset.env_id == "hrl/PointMaze-v0" and dataset.num_episodes == 10
    assert np.all(np.abs(dataset.actions) <= 1.0)
    assert np.isfinite(dataset.observations).all()
    assert layout.free_mask(dataset.observations[:, :2]).all()
    assert np.all(dataset.episode_lengths <= config.max_steps_per_episode)
    reached = []
    for i in range(dataset.num_episodes):
        obs, _ = dataset.episode(i)
        distance = np.linalg.norm(obs[:, :2] - dataset.goals[i], axis=1)
        reached.append(distance[-1] <= config.goal_radius)
        # The episode ends at the first policy step within the goal radius.
        assert np.all(distance[:-1] > config.goal_radius)
    # Measured: 92% of 500 episodes (seed 0) reach the goal within 150 steps; the rest are long
    # paths that time out.
    assert np.mean(reached) >= 0.8
    # Collected data survives the round trip through the loader's checks.
    loaded = load_dataset(dataset.save(tmp_path / "c.h5"), env_id="hrl/PointMaze-v0")
    np.testing.assert_array_equal(loaded.observations, dataset.observations)


def test_max_goal_distance_limits_coverage() -> None:
    config = CollectConfig(episodes=8, seed=5, max_goal_distance_cells=3, max_steps_per_episode=60)
    dataset = collect_dataset(config, progress=False)
    layout = MazeLayout.load("maze")
    for i in range(dataset.num_episodes):
        obs, _ = dataset.episode(i)
        distances = bfs_cell_distances(layout, layout.cell_of(obs[0, :2]))
        assert 0 <= distances[layout.cell_of(dataset.goals[i])] <= 3
    # Every episode stays near its start: far less of the maze than an unrestricted run.
    assert dataset.episode_lengths.max() < 60


def test_multiple_goals_per_episode() -> None:
    config = CollectConfig(
        episodes=3,
        seed=2,
        goals_per_episode=3,
        max_goal_distance_cells=4,
        max_steps_per_episode=120,
    )
    dataset = collect_dataset(config, progress=False)
    layout = MazeLayout.load("maze")
    for i in range(dataset.num_episodes):
        obs, _ = dataset.episode(i)
        near_goal = np.linalg.norm(obs[:, :2] - dataset.goals[i], axis=1) <= config.goal_radius
        assert near_goal[-1]
        distances = bfs_cell_distances(layout, layout.cell_of(obs[0, :2]))
        assert distances[layout.cell_of(dataset.goals[i])] <= 4


def test_collector_config_and_env_errors() -> None:
    with pytest.raises(ValueError, match=r"CollectConfig\.episodes must be > 0"):
        CollectConfig(episodes=0)
    with pytest.raises(ValueError, match="random_action_prob must be in"):
        CollectConfig(random_action_prob=1.5)
    with pytest.raises(ValueError, match="has no maze layout"):
        collect_dataset(CollectConfig(env_id="dm_control/point_mass-easy-v0", episodes=1), False)


def test_bfs_distances_on_small_layout() -> None:
    layout = MazeLayout.from_text(SMALL)
    distances = bfs_cell_distances(layout, layout.start_cell)
    expected = [
        [-1, -1, -1, -1, -1],
        [-1, 0, 1, 2, -1],
        [-1, 1, -1, 3, -1],
        [-1, 2, 3, 4, -1],
        [-1, -1, -1, -1, -1],
    ]
    np.testing.assert_array_equal(distances, expected)
    assert farthest_cell(layout) == (3, 3)
    with pytest.raises(ValueError, match=r"source cell \(2, 2\) is not a free cell"):
        bfs_cell_distances(layout, (2, 2))


# ------------------------------------------------------------------------------ far goal


def test_point_maze_far_sparse_reward_and_termination() -> None:
    env = make_env("hrl/PointMazeFar-v0")
    layout = env.unwrapped.layout
    goal = env.get_wrapper_attr("goal")
    np.testing.assert_array_equal(goal, layout.xy_of(layout.goal_cells[0]))  # the maze's G
    assert bfs_cell_distances(layout, layout.start_cell)[layout.cell_of(goal)] >= 30
    assert xy_indices(env) == (0, 1) and goal_space(env).contains(goal)
    assert env.spec.max_episode_steps == 3000

    obs, info = env.reset(seed=0)
    assert np.all(np.abs(obs[:2] - layout.start_xy) <= 0.1)
    np.testing.assert_array_equal(info["goal"], goal)
    follower = WaypointFollower(layout)
    follower.plan(obs[:2], goal)
    rewards, terminated, truncated, steps = [], False, False, 0
    while not (terminated or truncated):
        action = follower.action(obs[:2], obs[2:]).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        steps += 1
    assert terminated and not truncated and info["success"]
    assert np.linalg.norm(obs[:2] - goal) <= 0.5
    assert rewards[-1] == 1.0 and set(rewards[:-1]) == {0.0}
    assert 1000 < steps < 3000  # a long horizon, but within the time limit

    # The goal stays fixed, a start option passes through, and another goal is refused.
    obs, info = env.reset(seed=1, options={"start_xy": goal + np.array([0.7, 0.0])})
    np.testing.assert_array_equal(info["goal"], goal)
    _, reward, terminated, _, _ = env.step(np.array([-1.0, 0.0], np.float32))
    assert (reward, terminated) == (0.0, False)
    for _ in range(100):
        _, reward, terminated, _, _ = env.step(np.array([-1.0, 0.0], np.float32))
        if terminated:
            break
    assert (reward, terminated) == (1.0, True)
    with pytest.raises(ValueError, match="goal is fixed at"):
        env.reset(options={"goal": layout.start_xy})
    env.close()

"""Tests for envs/: layouts, the point mass, goal following, and a contract over every env id."""

from __future__ import annotations

import itertools
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs import (
    GoalFollowing,
    GoalSpace,
    MazeLayout,
    PointMassEnv,
    env_ids,
    goal_space,
    make_env,
    xy_indices,
)

# Steps per env in the contract test: long enough to leave the initial state, short enough
# that Ant and the quadruped stay quick.
CONTRACT_STEPS = 50

SMALL = """
#####
#S..#
#.#.#
#..G#
#####
"""


# ------------------------------------------------------------------------------ contract


@pytest.fixture(scope="module", params=env_ids())
def env_id(request: pytest.FixtureRequest) -> str:
    return request.param


def _rollout(env: gymnasium.Env, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        action = rng.uniform(low, high).astype(env.action_space.dtype)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


def test_env_contract(env_id: str) -> None:
    env = make_env(env_id)
    try:
        with warnings.catch_warnings():
            # Infinite Box bounds (dm_control) and "env is wrapped" are expected warnings.
            warnings.simplefilter("ignore")
            check_env(env.unwrapped, skip_render_check=True)
            check_env(env, skip_render_check=True)
        assert isinstance(env.observation_space, gymnasium.spaces.Box)
        assert env.observation_space.dtype == np.float32
        assert isinstance(env.action_space, gymnasium.spaces.Box)

        observations, rewards = _rollout(env, seed=7, steps=CONTRACT_STEPS)
        assert len(rewards) == CONTRACT_STEPS
        assert np.isfinite(observations).all()
        assert np.isfinite(rewards).all()
        assert all(env.observation_space.contains(obs) for obs in observations)

        again, again_rewards = _rollout(env, seed=7, steps=CONTRACT_STEPS)
        np.testing.assert_array_equal(observations, again)
        np.testing.assert_array_equal(rewards, again_rewards)

        indices = xy_indices(env)
        if env_id != "dm_control/reacher-easy-v0":
            assert indices is not None
        if indices is not None:
            space = goal_space(env)
            assert space is not None
            assert space.contains(observations[0][list(indices)])
    finally:
        env.close()


def test_quadruped_xy_is_torso_position() -> None:
    env = make_env("dm_control/quadruped-walk-v0")
    obs, _ = env.reset(seed=3)
    physics = env.unwrapped._env.physics
    np.testing.assert_allclose(
        obs[list(xy_indices(env))], physics.named.data.xpos["torso"][:2], atol=1e-6
    )
    assert xy_indices(env) == (obs.shape[0] - 2, obs.shape[0] - 1)
    env.close()


def test_make_env_unknown_id_lists_known_ids() -> None:
    with pytest.raises(ValueError, match=r"unknown environment id 'Nope-v0'.*hrl/PointMaze-v0"):
        make_env("Nope-v0")
    with pytest.raises(ValueError, match="dm_control/<domain>-<task>-v0"):
        make_env("dm_control/nodomain-notask-v0")


def test_make_env_options() -> None:
    env = make_env("hrl/PointMaze-v0", max_episode_steps=5)
    env.reset(seed=0)
    truncated = False
    for _ in range(5):
        *_, truncated, _ = env.step(env.action_space.sample())
    assert truncated
    assert gymnasium.make("hrl/PointArena-v0").spec.max_episode_steps == 1000
    assert gymnasium.make("hrl/PointMaze-v0").spec.max_episode_steps == 2000


def test_lookups_on_plain_env() -> None:
    env = gymnasium.make("CartPole-v1")
    assert xy_indices(env) is None
    assert goal_space(env) is None


# -------------------------------------------------------------------------------- layout


def test_layout_parsing_and_coordinates() -> None:
    layout = MazeLayout.from_text(SMALL, cell_size=2.0)
    assert (layout.nrows, layout.ncols, layout.cell_size) == (5, 5, 2.0)
    assert layout.start_cell == (1, 1)
    np.testing.assert_allclose(layout.start_xy, [-2.0, 2.0])
    assert layout.goal_cells == [(3, 3)]
    assert layout.free_cells == [(1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2), (3, 3)]
    low, high = layout.bounds
    np.testing.assert_allclose(low, [-3.0, -3.0])
    np.testing.assert_allclose(high, [3.0, 3.0])
    for r in range(layout.nrows):
        for c in range(layout.ncols):
            xy = layout.xy_of((r, c))
            assert layout.cell_of(xy) == (r, c)
            # Any point strictly inside the cell maps back to it.
            assert layout.cell_of(xy + np.array([0.99, -0.99])) == (r, c)
    assert layout.is_free(layout.xy_of((2, 1)))
    assert not layout.is_free(layout.xy_of((2, 2)))
    assert not layout.is_free([100.0, 0.0])
    assert not layout.is_free([np.nan, 0.0])
    # 0.5 m from the central wall block: free at margin 0.4, not at margin 0.6.
    point = layout.xy_of((2, 1)) + np.array([0.5, 0.0])
    assert layout.is_free(point, margin=0.4)
    assert not layout.is_free(point, margin=0.6)
    with pytest.raises(ValueError, match="outside layout"):
        layout.cell_of([50.0, 0.0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("####\n#S.#\n#..\n####", "row 2 has 3 characters but row 0 has 4"),
        ("####\n#Sx#\n####", r"unknown character 'x' at row 1, col 2"),
        ("####\n#..#\n####", "exactly one start cell 'S', found none"),
        ("#####\n#S.S#\n#####", r"found 2 at \(row, col\) \[\(1, 1\), \(1, 3\)\]"),
        ("####\n#S..\n####", "border is not closed: cell at row 1, col 3"),
        ("#####\n#S#.#\n#####", r"free cells \(row, col\) \[\(1, 3\)\] cannot be reached"),
        ("", "the text is empty"),
    ],
)
def test_layout_validation_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MazeLayout.from_text(text)


def test_layout_load_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"no shipped layout named 'nope'.*'arena', 'maze'"):
        MazeLayout.load("nope")


def test_arena_free_space_covers_ten_metre_square() -> None:
    arena = MazeLayout.load("arena")
    low, high = arena.bounds
    np.testing.assert_allclose(low, [-5.0, -5.0])
    np.testing.assert_allclose(high, [5.0, 5.0])
    grid = np.stack(np.meshgrid(np.linspace(-4.99, 4.99, 41), np.linspace(-4.99, 4.99, 41)), -1)
    assert arena.free_mask(grid.reshape(-1, 2)).all()
    assert not arena.is_free([5.2, 0.0])
    assert arena.is_free([4.75, 0.0], margin=0.2)
    assert not arena.is_free([4.85, 0.0], margin=0.2)


@pytest.mark.parametrize("name", ["arena", "maze"])
def test_wall_boxes_cover_every_wall_cell(name: str) -> None:
    layout = MazeLayout.load(name)
    boxes = layout.wall_boxes()
    assert boxes.shape[1] == 4
    assert np.all(boxes[:, :2] < boxes[:, 2:])
    wall_cells = [
        (r, c) for r in range(layout.nrows) for c in range(layout.ncols) if layout.rows[r][c] == "#"
    ]
    # Merging runs keeps the geoms few.
    assert len(boxes) < len(wall_cells) / 2
    for cell in wall_cells:
        x, y = layout.xy_of(cell)
        inside = (boxes[:, 0] < x) & (x < boxes[:, 2]) & (boxes[:, 1] < y) & (y < boxes[:, 3])
        assert inside.sum() == 1, f"wall cell {cell} is covered by {inside.sum()} boxes"
    for cell in layout.free_cells:
        x, y = layout.xy_of(cell)
        assert not np.any(
            (boxes[:, 0] < x) & (x < boxes[:, 2]) & (boxes[:, 1] < y) & (y < boxes[:, 3])
        )


def test_maze_is_long_horizon() -> None:
    maze = MazeLayout.load("maze")
    far = maze.xy_of(maze.goal_cells[0])
    path = maze.shortest_path(maze.start_xy, far)
    length = np.abs(np.diff(np.vstack([maze.start_xy, path]), axis=0)).sum()
    assert length >= 15 * maze.cell_size
    assert len(path) >= 4  # it turns through several doorways


def _assert_segments_free(layout: MazeLayout, start: np.ndarray, path: np.ndarray) -> None:
    points = np.vstack([start, path])
    for a, b in itertools.pairwise(points):
        t = np.linspace(0.0, 1.0, 200)[:, None]
        samples = a + t * (b - a)
        assert layout.free_mask(samples).all(), f"segment {a} -> {b} crosses a wall"


def test_shortest_path_goes_around_walls() -> None:
    maze = MazeLayout.load("maze")
    rng = np.random.default_rng(1)
    starts = maze.sample_free(rng, 30, margin=0.0)
    goals = maze.sample_free(rng, 30, margin=0.0)
    for start, goal in zip(starts, goals, strict=True):
        path = maze.shortest_path(start, goal)
        np.testing.assert_array_equal(path[-1], goal)
        _assert_segments_free(maze, start, path)
    # Start and goal on either side of a wall: a straight line would cross it.
    start, goal = maze.xy_of((1, 5)), maze.xy_of((1, 7))
    assert not maze.free_mask(np.linspace(start, goal, 50)).all()
    path = maze.shortest_path(start, goal)
    assert len(path) > 1
    _assert_segments_free(maze, start, path)
    # Same cell: just the goal.
    np.testing.assert_array_equal(maze.shortest_path(start, start + 0.1), [start + 0.1])


def test_shortest_path_rejects_points_in_walls() -> None:
    maze = MazeLayout.load("maze")
    wall = maze.xy_of((0, 0))
    with pytest.raises(ValueError, match=r"start_xy=.*is not in free space"):
        maze.shortest_path(wall, maze.start_xy)
    with pytest.raises(ValueError, match=r"goal_xy=.*is not in free space"):
        maze.shortest_path(maze.start_xy, wall)


def test_sample_free_is_seeded_and_free() -> None:
    maze = MazeLayout.load("maze")
    a = maze.sample_free(np.random.default_rng(5), 500, margin=0.3)
    b = maze.sample_free(np.random.default_rng(5), 500, margin=0.3)
    c = maze.sample_free(np.random.default_rng(6), 500, margin=0.3)
    assert a.shape == (500, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert maze.free_mask(a, margin=0.3).all()
    # Uniform over free space: every room gets samples.
    cells = {maze.cell_of(p) for p in a}
    assert len(cells) > 0.8 * len(maze.free_cells)
    with pytest.raises(ValueError, match="use a smaller margin"):
        maze.sample_free(np.random.default_rng(0), 5, margin=5.0)


# ---------------------------------------------------------------------------- point mass


def test_point_mass_terminal_speed_and_wall() -> None:
    env = PointMassEnv("arena")
    assert env.dt == pytest.approx(0.01)
    obs, info = env.reset(seed=0, options={"start_xy": (0.0, 0.0)})
    np.testing.assert_array_equal(obs[:2], [0.0, 0.0])
    np.testing.assert_array_equal(info["xy"], [0.0, 0.0])
    terminal, tau = env.config.terminal_speed, env.config.time_constant
    assert terminal == pytest.approx(2.0)
    assert tau == pytest.approx(0.2)
    speeds, xs = [], []
    for _ in range(400):
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], np.float32))
        assert reward == 0.0 and not terminated and not truncated
        speeds.append(obs[2])
        xs.append(obs[0])
    # First-order response: v(tau) = v_terminal (1 - 1/e).
    steps_per_tau = round(tau / env.dt)
    assert speeds[steps_per_tau - 1] == pytest.approx(terminal * (1 - np.exp(-1)), rel=0.03)
    assert max(speeds) == pytest.approx(terminal, rel=0.02)
    # The wall face is at x = 5: the sphere (radius 0.2) stops against it.
    assert max(xs) < 5.0 - env.config.radius + 0.02
    assert xs[-1] > 5.0 - env.config.radius - 0.02
    assert abs(speeds[-1]) < 0.05
    assert abs(obs[1]) < 0.05


def test_point_mass_reset_noise_and_start_option() -> None:
    env = PointMassEnv("maze")
    obs, _ = env.reset(seed=1)
    assert np.all(np.abs(obs[:2] - env.layout.start_xy) <= 0.1)
    assert np.all(np.abs(obs[2:]) <= 0.01)
    with pytest.raises(ValueError, match=r"start_xy=.*free space at least the sphere radius"):
        env.reset(options={"start_xy": (0.0, 0.0)})  # (7, 7) is a wall cell of the maze
    with pytest.raises(ValueError, match="unknown options"):
        env.reset(options={"goal": (0.0, 0.0)})


def test_point_mass_reports_divergence() -> None:
    env = PointMassEnv("arena")
    env.reset(seed=0)
    env.data.qvel[:] = np.inf
    _, _, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert terminated
    assert info["physics_warning"] in ("mjWARN_BADQVEL", "mjWARN_BADQACC", "non_finite_state")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert not terminated and "physics_warning" not in info


def test_point_mass_rejects_bad_render_mode() -> None:
    with pytest.raises(ValueError, match="render_mode='human' is not supported"):
        PointMassEnv("arena", render_mode="human")


# -------------------------------------------------------------------------------- goals


def test_goal_space_why_not() -> None:
    maze = MazeLayout.load("maze")
    space = GoalSpace.for_layout(maze)
    assert space.why_not(maze.start_xy) is None
    assert space.contains(maze.start_xy)
    assert "outside the bounds" in space.why_not([9.0, 0.0])
    assert "inside a wall" in space.why_not([0.0, 0.0])
    assert "not finite" in space.why_not([np.nan, 0.0])
    assert "shape (2,)" in space.why_not([1.0, 2.0, 3.0])
    box = GoalSpace.box((-1.0, -1.0), (1.0, 1.0))
    assert box.contains([0.5, -0.5]) and not box.contains([1.5, 0.0])
    samples = box.sample(np.random.default_rng(0), 100)
    assert samples.shape == (100, 2) and all(box.contains(p) for p in samples)
    samples = space.sample(np.random.default_rng(0), 100)
    assert maze.free_mask(samples, margin=0.3).all()
    with pytest.raises(ValueError, match="must be below high"):
        GoalSpace.box((1.0, 0.0), (0.0, 1.0))


def test_goal_following_dense_and_sparse_rewards() -> None:
    goal = np.array([2.0, 0.0])
    for kind in ("dense", "sparse"):
        env = GoalFollowing(make_env("hrl/PointArena-v0"), reward=kind, success_radius=0.5)
        obs, info = env.reset(seed=0, options={"goal": goal, "start_xy": (0.0, 0.0)})
        np.testing.assert_array_equal(info["goal"], goal)
        assert info["distance"] == pytest.approx(2.0)
        assert not info["success"]
        rewards, distances, successes = [], [], []
        for _ in range(150):
            obs, reward, terminated, _, info = env.step(np.array([1.0, 0.0], np.float32))
            rewards.append(reward)
            distances.append(info["distance"])
            successes.append(info["success"])
            assert not terminated
            assert info["distance"] == pytest.approx(np.linalg.norm(obs[:2] - goal), abs=1e-5)
        distances_arr = np.array(distances)
        np.testing.assert_array_equal(successes, distances_arr <= 0.5)
        assert any(successes) and not all(successes)
        if kind == "dense":
            np.testing.assert_allclose(rewards, -distances_arr)
        else:
            np.testing.assert_array_equal(rewards, np.where(distances_arr <= 0.5, 1.0, 0.0))


def test_goal_following_terminates_on_success_and_goal_in_obs() -> None:
    env = GoalFollowing(make_env("hrl/PointArena-v0"), terminate_on_success=True, goal_in_obs=True)
    assert env.observation_space.shape == (6,)
    obs, _ = env.reset(seed=0, options={"goal": (1.0, 0.0), "start_xy": (0.0, 0.0)})
    np.testing.assert_array_equal(obs[4:], [1.0, 0.0])
    assert env.observation_space.contains(obs)
    steps = 0
    terminated = False
    while not terminated and steps < 100:
        obs, _, terminated, _, info = env.step(np.array([1.0, 0.0], np.float32))
        steps += 1
    assert terminated and info["success"] and steps < 60
    assert info["distance"] <= 0.5 < np.linalg.norm([1.0, 0.0])


def test_goal_following_passes_env_checker() -> None:
    env = GoalFollowing(make_env("hrl/PointMaze-v0"), goal_in_obs=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)


def test_goal_following_samples_valid_seeded_goals() -> None:
    env = GoalFollowing(make_env("hrl/PointMaze-v0"))
    goals = [env.reset(seed=s)[1]["goal"] for s in (3, 3, 4)]
    np.testing.assert_array_equal(goals[0], goals[1])
    assert not np.array_equal(goals[0], goals[2])
    for seed in range(20):
        _, info = env.reset(seed=seed)
        assert env.goal_space.contains(info["goal"])
        assert env.unwrapped.layout.is_free(info["goal"], margin=0.3)
        assert info["distance"] > env.success_radius


def test_goal_following_validation_messages() -> None:
    env = GoalFollowing(make_env("hrl/PointMaze-v0"))
    with pytest.raises(ValueError, match=r"set_goal: goal \[0.0, 0.0\] is inside a wall"):
        env.set_goal((0.0, 0.0))
    with pytest.raises(ValueError, match="outside the bounds"):
        env.reset(seed=0, options={"goal": (20.0, 0.0)})
    with pytest.raises(ValueError, match="reward must be 'dense' or 'sparse'"):
        GoalFollowing(make_env("hrl/PointArena-v0"), reward="shaped")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not expose xy_indices"):
        GoalFollowing(gymnasium.make("Pendulum-v1"))


@pytest.mark.parametrize("env_id", ["Ant-v5", "dm_control/point_mass-easy-v0"])
def test_goal_following_on_other_envs(env_id: str) -> None:
    env = GoalFollowing(make_env(env_id), reward="dense")
    obs, info = env.reset(seed=0)
    assert env.goal_space.contains(info["goal"])
    xy = obs[list(env.xy_indices)]
    assert info["distance"] == pytest.approx(np.linalg.norm(xy - info["goal"]), abs=1e-5)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert reward == pytest.approx(-info["distance"])

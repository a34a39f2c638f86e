"""MuJoCo and dm_control environments behind the Gymnasium API, and goal-following tasks.

Importing this package registers ``hrl/PointArena-v0`` and ``hrl/PointMaze-v0`` with Gymnasium.
Make every environment through :func:`make_env`.
"""

from envs.collect import CollectConfig, WaypointFollower, collect_dataset
from envs.datasets import DatasetError, TrajectoryDataset, load_dataset
from envs.far_goal import FixedGoal, bfs_cell_distances, farthest_cell
from envs.goals import GoalFollowing, GoalSpace, goal_space, xy_indices
from envs.layout import MazeLayout
from envs.point_mass import PointMassConfig, PointMassEnv
from envs.registration import env_ids, episode_steps, make_env, success_radius
from envs.rendering import offscreen_rendering_problem

__all__ = [
    "CollectConfig",
    "DatasetError",
    "FixedGoal",
    "GoalFollowing",
    "GoalSpace",
    "MazeLayout",
    "PointMassConfig",
    "PointMassEnv",
    "TrajectoryDataset",
    "WaypointFollower",
    "bfs_cell_distances",
    "collect_dataset",
    "env_ids",
    "episode_steps",
    "farthest_cell",
    "goal_space",
    "load_dataset",
    "make_env",
    "offscreen_rendering_problem",
    "success_radius",
    "xy_indices",
]

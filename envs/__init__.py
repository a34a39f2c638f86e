"""MuJoCo and dm_control environments behind the Gymnasium API, and goal-following tasks.

Importing this package registers ``hrl/PointArena-v0`` and ``hrl/PointMaze-v0`` with Gymnasium.
Make every environment through :func:`make_env`.
"""

from envs.goals import GoalFollowing, GoalSpace
from envs.layout import MazeLayout
from envs.point_mass import PointMassConfig, PointMassEnv
from envs.registration import env_ids, goal_space, make_env, xy_indices

__all__ = [
    "GoalFollowing",
    "GoalSpace",
    "MazeLayout",
    "PointMassConfig",
    "PointMassEnv",
    "env_ids",
    "goal_space",
    "make_env",
    "xy_indices",
]

"""Scripted collection of offline trajectory datasets on the point-mass mazes.

Each episode starts at a uniformly random free position, picks a random goal, and follows the
corridor waypoints of :meth:`MazeLayout.shortest_path` with a noisy PD law
``a = clip(kp * (w - p) - kd * v + noise, -1, 1)`` at the policy rate (each action held for
``action_repeat`` control steps), the same law as ``skill_library.scripted`` reach.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import numpy as np
from tqdm.auto import tqdm

from envs.datasets import TrajectoryDataset
from envs.far_goal import bfs_cell_distances
from envs.layout import MazeLayout
from envs.registration import make_env

logger = logging.getLogger(__name__)

# Tries at sampling a goal that satisfies every constraint before giving up.
_GOAL_SAMPLE_TRIES = 1000


@dataclass(frozen=True)
class CollectConfig:
    """What :func:`collect_dataset` records and how its scripted policy behaves."""

    env_id: str = "hrl/PointMaze-v0"
    """A point-mass env id (the env must have a ``layout``), e.g. ``hrl/PointArena-v0``."""
    episodes: int = 100
    """Number of episodes to record."""
    seed: int = 0
    """Seed of every random choice (starts, goals, noise, env resets)."""
    action_repeat: int = 10
    """Control steps each recorded action is held (10 -> 10 Hz on the 100 Hz point mass)."""
    max_steps_per_episode: int = 150
    """Episode length limit, in policy steps."""
    action_noise: float = 0.2
    """Std of the Gaussian noise added to the PD action before clipping, actuator units."""
    random_action_prob: float = 0.1
    """Probability that a policy step takes a uniformly random action instead (diversity)."""
    waypoint_radius: float = 0.4
    """Distance at which the follower moves on to the next waypoint, metres."""
    goal_radius: float = 0.5
    """Distance counted as reaching the goal, metres."""
    kp: float = 1.5
    """Proportional gain, actuator units per metre."""
    kd: float = 0.5
    """Damping gain, actuator units per m/s."""
    goals_per_episode: int = 1
    """Goals visited in turn before the episode ends (each new one random, same constraints)."""
    max_goal_distance_cells: int | None = None
    """None: goals anywhere in free space; k: only goals within k BFS cells of the episode's
    start, so each trajectory covers part of the maze (data that needs stitching)."""
    wall_margin: float = 0.3
    """Clearance from walls of sampled starts and goals, metres (>= the sphere radius)."""

    def __post_init__(self) -> None:
        positive = {
            "episodes": self.episodes,
            "action_repeat": self.action_repeat,
            "max_steps_per_episode": self.max_steps_per_episode,
            "goals_per_episode": self.goals_per_episode,
            "waypoint_radius": self.waypoint_radius,
            "goal_radius": self.goal_radius,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"CollectConfig.{name} must be > 0, got {value}")
        if self.action_noise < 0:
            raise ValueError(f"CollectConfig.action_noise must be >= 0, got {self.action_noise}")
        if not 0.0 <= self.random_action_prob <= 1.0:
            raise ValueError(
                f"CollectConfig.random_action_prob must be in [0, 1], got {self.random_action_prob}"
            )
        if self.max_goal_distance_cells is not None and self.max_goal_distance_cells < 1:
            raise ValueError(
                "CollectConfig.max_goal_distance_cells must be None or >= 1, got "
                f"{self.max_goal_distance_cells}"
            )


class WaypointFollower:
    """Follows the shortest corridor path to a goal with a saturated PD law (no noise).

    Args:
        layout: The maze.
        kp: Proportional gain, actuator units per metre.
        kd: Damping gain, actuator units per m/s.
        waypoint_radius: Distance at which the next waypoint becomes the target, metres.
    """

    def __init__(
        self, layout: MazeLayout, kp: float = 1.5, kd: float = 0.5, waypoint_radius: float = 0.4
    ) -> None:
        self.layout = layout
        self.kp = float(kp)
        self.kd = float(kd)
        self.waypoint_radius = float(waypoint_radius)
        self._waypoints = np.zeros((1, 2))
        self._next = 0

    def plan(self, xy: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Plans the corridor waypoints from a position to a goal.

        Args:
            xy: ``(2,)`` current x-y, metres (in free space).
            goal: ``(2,)`` goal x-y, metres (in free space).

        Returns:
            ``(N, 2)`` waypoints, metres; the last is the goal.
        """
        self._waypoints = self.layout.shortest_path(xy, goal)
        self._next = 0
        return self._waypoints.copy()

    @property
    def target(self) -> np.ndarray:
        """The waypoint currently steered to, ``(2,)`` metres."""
        return self._waypoints[self._next].copy()

    def action(self, xy: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        """The PD action toward the current waypoint, advancing past waypoints already reached.

        Args:
            xy: ``(2,)`` position, metres.
            velocity: ``(2,)`` velocity, m/s.

        Returns:
            ``(2,)`` float64 action in ``[-1, 1]``.
        """
        last = len(self._waypoints) - 1
        while (
            self._next < last
            and np.linalg.norm(self._waypoints[self._next] - xy) <= self.waypoint_radius
        ):
            self._next += 1
        command = self.kp * (self._waypoints[self._next] - xy) - self.kd * velocity
        return np.clip(command, -1.0, 1.0)


def collect_dataset(
    config: CollectConfig, progress: bool = True, created_by: str | None = None
) -> TrajectoryDataset:
    """Records scripted goal-reaching episodes on a point-mass maze or arena.

    Deterministic: the same config gives identical arrays.

    Args:
        config: What to collect.
        progress: Show a tqdm progress bar over episodes.
        created_by: Recorded in the dataset's ``created_by``; default names this function.

    Returns:
        The dataset, ``goals (E, 2)`` holding each episode's last goal.

    Raises:
        ValueError: If the env is not a point-mass env with a maze ``layout``, or goals within
            ``max_goal_distance_cells`` cannot be found.
        RuntimeError: If the physics diverges during collection.
    """
    # The scripted episode ends itself; the time limit only backs it up.
    env = make_env(
        config.env_id, max_episode_steps=config.max_steps_per_episode * config.action_repeat
    )
    layout = getattr(env.unwrapped, "layout", None)
    if not isinstance(layout, MazeLayout):
        env.close()
        raise ValueError(
            f"collect_dataset: {config.env_id} has no maze layout; the scripted collector only "
            "drives the point-mass envs (hrl/PointMaze-v0, hrl/PointArena-v0)."
        )
    rng = np.random.default_rng(config.seed)
    follower = WaypointFollower(layout, config.kp, config.kd, config.waypoint_radius)
    ix, iy = env.unwrapped.xy_indices
    vx, vy = env.unwrapped.velocity_indices
    observations: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    lengths: list[int] = []
    goals: list[np.ndarray] = []
    reached = 0
    for episode in tqdm(range(config.episodes), desc="collect", unit="ep", disable=not progress):
        start = layout.sample_free(rng, 1, margin=config.wall_margin)[0]
        obs, _ = env.reset(seed=int(rng.integers(2**31)), options={"start_xy": start})
        cell_distances = bfs_cell_distances(layout, layout.cell_of(start))
        goal = _sample_goal(rng, layout, start, cell_distances, config)
        follower.plan(obs[[ix, iy]], goal)
        episode_obs, episode_actions = [obs], []
        goals_reached = 0
        for _ in range(config.max_steps_per_episode):
            if rng.random() < config.random_action_prob:
                action = rng.uniform(-1.0, 1.0, size=2)
            else:
                action = follower.action(obs[[ix, iy]], obs[[vx, vy]])
                action = action + config.action_noise * rng.standard_normal(2)
            action = np.clip(action, -1.0, 1.0).astype(np.float32)
            for _ in range(config.action_repeat):
                obs, _, terminated, truncated, info = env.step(action)
                if terminated or truncated:
                    break
            if terminated:
                env.close()
                raise RuntimeError(
                    f"collect_dataset: episode {episode} of {config.env_id} terminated "
                    f"({info.get('physics_warning', 'by the env')}); the scripted collector "
                    "expects the physics to stay stable. Check the env's PointMassConfig."
                )
            episode_obs.append(obs)
            episode_actions.append(action)
            if np.linalg.norm(obs[[ix, iy]] - goal) <= config.goal_radius:
                goals_reached += 1
                if goals_reached == config.goals_per_episode:
                    break
                goal = _sample_goal(rng, layout, start, cell_distances, config)
                follower.plan(obs[[ix, iy]], goal)
            if truncated:
                break
        reached += goals_reached == config.goals_per_episode
        observations.extend(episode_obs)
        actions.extend(episode_actions)
        lengths.append(len(episode_actions))
        goals.append(goal)
    env.close()
    logger.info(
        "collected %d episodes (%d policy steps) on %s; %d reached all their goals",
        config.episodes,
        sum(lengths),
        config.env_id,
        reached,
    )
    return TrajectoryDataset(
        observations=np.stack(observations),
        actions=np.stack(actions),
        episode_lengths=np.asarray(lengths, dtype=np.int64),
        goals=np.stack(goals),
        env_id=config.env_id,
        action_repeat=config.action_repeat,
        seed=config.seed,
        collector=json.loads(json.dumps(asdict(config))),
        created_by=created_by or "envs.collect.collect_dataset",
    )


def _sample_goal(
    rng: np.random.Generator,
    layout: MazeLayout,
    start: np.ndarray,
    cell_distances: np.ndarray,
    config: CollectConfig,
) -> np.ndarray:
    """A free-space goal farther than ``goal_radius`` from the start (and within reach)."""
    limit = config.max_goal_distance_cells
    for _ in range(_GOAL_SAMPLE_TRIES):
        goal = layout.sample_free(rng, 1, margin=config.wall_margin)[0]
        if np.linalg.norm(goal - start) <= config.goal_radius:
            continue
        if limit is None or cell_distances[layout.cell_of(goal)] <= limit:
            return goal
    raise ValueError(
        f"collect_dataset: found no goal more than goal_radius={config.goal_radius} m from "
        f"start {start.round(2).tolist()} within max_goal_distance_cells={limit} in "
        f"{_GOAL_SAMPLE_TRIES} tries on layout {layout.name}; raise max_goal_distance_cells."
    )

"""Actionable Models training from offline trajectories; the only optimizer step in
``actionable/``.

Each batch mixes two goal relabellings of dataset transitions ``(s_t, a_t, s_{t+1})``:

- hindsight: the goal is the x-y at the end of a random sub-trajectory ``s_t .. s_{t+k}`` of the
  same episode; reward 1 when ``s_{t+1}`` is within ``success_radius`` of it (the episode ends);
- goal chaining (Sec. 3.3 of the paper): the goal is the x-y of a state of any trajectory (half
  of them near ``s_t``, where walls matter); there is rarely a reward, and the target
  ``gamma max_a' Q(s', a', g)`` carries reachability from the other trajectories that do reach
  ``g`` back into this one.

Conservative negatives are uniform actions at least ``negative_min_distance`` from the data
action. ``max_a' Q_target(s', a', g)`` is taken over actions *in the data's support*: the
actions of the ``target_neighbors`` dataset states nearest to ``s'`` (position and velocity),
which include the data's own next action; they come from other trajectories too, so the max
still stitches trajectories together. The paper maximizes over all actions and relies on the
negatives to keep unseen ones low (survey notes, "ACTIONABLE MODELS - SETUP"). With a sampled max
over uniform actions and the 8 full-actuation directions (and gamma 0.98), V(s, g) on the maze
data plateaued near 0.4 for goals 20+ cells away, so far goals were not ranked; with the
in-support max and gamma 0.96 it falls to 0.04-0.1 there. Neither separates a goal 2 m behind a
wall from one 2 m away in the open (Q extrapolates over ``g - s``); planners therefore chain only
along pairs the data links (:func:`subgoal_links`).
"""

from __future__ import annotations

import copy
import itertools
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.spaces import Box
from scipy.spatial import cKDTree

from hrl_runtime.errors import ConfigError
from skill_library.actionable.config import ActionableConfig
from skill_library.actionable.losses import actionable_loss
from skill_library.actionable.networks import GoalQNetwork, QNetworkConfig
from skill_library.actionable.skill import ActionableSkill
from skill_library.run import TrainingRun

logger = logging.getLogger(__name__)

LOG_EVERY = 200
"""Steps whose mean metrics make one history entry and TensorBoard point."""


class GoalRelabeler:
    """Draws relabelled batches from a trajectory dataset (numpy, vectorized).

    Args:
        dataset: an ``envs.TrajectoryDataset``.
        config: relabelling settings.
        goal_indices: observation entries a goal refers to.
    """

    def __init__(self, dataset: Any, config: ActionableConfig, goal_indices: tuple[int, ...]):
        self.config = config
        self.observations = np.asarray(dataset.observations, np.float32)
        self.actions = np.asarray(dataset.actions, np.float32)
        lengths = np.asarray(dataset.episode_lengths)
        episode = np.repeat(np.arange(len(lengths)), lengths)
        action_start = np.concatenate([[0], np.cumsum(lengths)])[:-1]
        #: per transition: index of s_t in observations, its step in the episode, episode length.
        self.obs_index = np.arange(len(self.actions)) + episode
        self.step = np.arange(len(self.actions)) - action_start[episode]
        self.length = lengths[episode]
        self.goals_xy = self.observations[:, list(goal_indices)]
        self.next_neighbors = self._nearest_transitions(config.target_neighbors)
        self._goal_tree = cKDTree(self.goals_xy)

    def _near_goals(self, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
        """Dataset x-y nearest to uniform points of discs around ``centres (B, 2)``: ``(B, 2)``."""
        angle = rng.uniform(0.0, 2.0 * np.pi, len(centres))
        radius = self.config.near_goal_radius * np.sqrt(rng.random(len(centres)))
        points = centres + radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
        _, nearest = self._goal_tree.query(points)
        return self.goals_xy[nearest]

    def _nearest_transitions(self, count: int) -> np.ndarray:
        """``(T, count)`` transitions whose ``s_t`` are nearest to each transition's ``s_{t+1}``.

        Distances use x-y (metres) and velocity (entries 2 and 3 when present) scaled by
        ``neighbor_velocity_scale``; their actions are the in-support candidates of ``max_a'``.
        """
        count = min(count, len(self.actions))
        if count <= 0:
            return np.zeros((len(self.actions), 0), np.int64)
        scale = np.ones(self.observations.shape[1], np.float32)
        scale[2:4] = self.config.neighbor_velocity_scale
        keys = self.observations * scale
        tree = cKDTree(keys[self.obs_index])
        _, nearest = tree.query(keys[self.obs_index + 1], k=count)
        return np.asarray(nearest, np.int64).reshape(len(self.actions), count)

    def _next_action_candidates(self, rng: np.random.Generator, index: np.ndarray) -> np.ndarray:
        """Candidates for ``max_a'`` at ``s_{t+1}``: ``(B, N + neighbors + 1, da)``.

        The data's own next action ``a_{t+1}`` (a random one at an episode's last step), the
        actions of the dataset states nearest to ``s_{t+1}``, and ``target_actions`` uniform
        samples (none by default: see the module docstring).
        """
        batch_size, da = len(index), self.actions.shape[1]
        uniform = rng.uniform(-1.0, 1.0, (batch_size, self.config.target_actions, da))
        has_next = self.step[index] + 1 < self.length[index]
        following = np.where(
            has_next[:, None],
            self.actions[np.minimum(index + 1, len(self.actions) - 1)],
            rng.uniform(-1.0, 1.0, (batch_size, da)),
        )
        neighbors = self.actions[self.next_neighbors[index]]
        return np.concatenate([uniform, neighbors, following[:, None]], 1).astype(np.float32)

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        """One relabelled batch (see :func:`~skill_library.actionable.losses.actionable_loss`)."""
        config = self.config
        index = rng.integers(0, len(self.actions), batch_size)
        obs_i = self.obs_index[index]
        # Hindsight: the end of a random sub-trajectory s_t .. s_{t+k}, k in [1, L - t].
        remaining = self.length[index] - self.step[index]
        k = 1 + np.floor(rng.random(batch_size) * remaining).astype(np.int64)
        goals = self.goals_xy[obs_i + k]
        lower = config.discount ** (k - 1).astype(np.float32)
        if config.chaining:
            chained = rng.random(batch_size) < config.chaining_fraction
            goals[chained] = self.goals_xy[rng.integers(0, len(self.observations), chained.sum())]
            near = chained & (rng.random(batch_size) < config.near_goal_fraction)
            goals[near] = self._near_goals(rng, self.goals_xy[obs_i[near]])
            lower[chained] = 0.0
        if not config.monte_carlo_bound:
            lower[:] = 0.0
        next_obs = self.observations[obs_i + 1]
        reached = np.linalg.norm(next_obs[:, :2] - goals, axis=1) <= config.success_radius
        da = self.actions.shape[1]
        data_actions = self.actions[index]
        m = config.num_negatives if config.negatives else 0
        negatives = np.zeros((batch_size, m, da), np.float32)
        if m:
            candidates = rng.uniform(-1.0, 1.0, (batch_size, 4 * m, da)).astype(np.float32)
            far = np.linalg.norm(candidates - data_actions[:, None], axis=-1)
            far = far >= config.negative_min_distance
            # The first m far candidates of each row (near ones only if fewer than m are far).
            order = np.argsort(~far, axis=1, kind="stable")[:, :m]
            negatives = np.take_along_axis(candidates, order[..., None], axis=1)
        return {
            "obs": self.observations[obs_i],
            "actions": data_actions,
            "next_obs": next_obs,
            "goals": goals.astype(np.float32),
            "rewards": reached.astype(np.float32),
            "lower_bounds": lower.astype(np.float32),
            "next_actions": self._next_action_candidates(rng, index),
            "negative_actions": negatives,
        }


def farthest_point_subset(points: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``count`` points of ``points (N, d)`` spread out by farthest-point sampling."""
    count = min(count, len(points))
    chosen = [int(rng.integers(len(points)))]
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return np.asarray(chosen)


def subgoal_links(dataset: Any, subgoal_xy: np.ndarray, radius: float, tube: float) -> np.ndarray:
    """Which subgoals the data joins by a straight run: ``(M, M)`` bool.

    ``[i, j]`` when some trajectory passes within ``radius`` of ``subgoal_xy[i]``, later within
    ``radius`` of ``subgoal_xy[j]``, and every state it visits in between lies within ``tube``
    of the segment from ``i`` to ``j``. The body travelled along that segment without touching
    a wall, so the greedy policy ``argmax_a Q(s, a, g_j)`` from near ``g_i``, which heads
    straight for ``g_j``, has nothing in its way. Elsewhere Q extrapolates over ``g - s`` (in
    the maze, through walls), and a pair the data only joins by going around a corner is one
    the greedy policy may not manage.

    Args:
        dataset: an ``envs.TrajectoryDataset``.
        subgoal_xy: ``(M, 2)`` subgoal positions, metres.
        radius: metres; how close a trajectory must pass to a subgoal to visit it.
        tube: metres; the largest distance of the trajectory from the segment in between.
    """
    links = np.eye(len(subgoal_xy), dtype=bool)
    xy = np.asarray(dataset.observations, np.float32)[:, :2]
    _, nearest = cKDTree(subgoal_xy).query(xy, distance_upper_bound=radius)
    starts = np.concatenate([[0], np.cumsum(np.asarray(dataset.episode_lengths) + 1)])
    for first, stop in itertools.pairwise(starts):
        path = xy[first:stop]  # (P, 2)
        hit = np.flatnonzero(nearest[first:stop] < len(subgoal_xy))  # misses give M
        if len(hit) < 2:
            continue
        node = nearest[first:stop][hit]
        ends = subgoal_xy[node]  # (V, 2) the visited subgoals, in visiting order
        # Distance of every path state (P) to every segment ends[a] -> ends[b]: (V, V, P).
        d = ends[None, :, None] - ends[:, None, None]
        rel = path[None, None] - ends[:, None, None]
        along = np.clip((rel * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0.0, 1.0)[..., None]
        off = np.linalg.norm(rel - along * d, axis=-1)
        # Only the states from visit a to visit b count for the pair (a, b), a <= b.
        step = np.arange(len(path))
        inside = (step[None, None] >= hit[:, None, None]) & (step[None, None] <= hit[None, :, None])
        worst = np.where(inside, off, 0.0).max(-1)
        ordered = hit[:, None] <= hit[None, :]
        rows, cols = np.nonzero(ordered & (worst <= tube))
        links[node[rows], node[cols]] = True
    return links


def train_actionable(
    dataset: Any,
    config: ActionableConfig,
    out_dir: Path,
    *,
    name: str = "am-skill",
    version: str = "1.0.0",
    command: str = "",
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Trains ``Q(s, a, g)`` on relabelled dataset transitions and writes the skill package.

    Args:
        dataset: an ``envs.TrajectoryDataset`` (x-y goals are observation entries 0 and 1).
        config: training settings.
        out_dir: package directory (``checkpoint/`` and ``tensorboard/`` inside).
        name: package name.
        version: package version.
        command: the command line, for the manifest (by default this process's arguments).
        resume: continue from ``out_dir/checkpoint`` if present (only ``steps`` may differ
            from the checkpoint's configuration).
        progress: show a progress bar.

    Raises:
        ConfigError: a dataset that cannot train a goal-reaching skill, or a checkpoint made
            with another configuration.
    """
    check_dataset(dataset, config)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    relabeler, network = build_network(dataset, config)
    learner = _QLearner(network, config, rng)
    run = TrainingRun(
        config,
        out_dir,
        tag="am",
        budget="steps",
        command=command,
        progress=progress,
        version=version,
    )
    state = run.resume() if resume else None
    if state is not None:
        learner.restore(state)
    with run.session(done=learner.step):
        _fit(learner, relabeler, config, run)
    run.save(learner.state())
    return _package(run, learner, dataset, name)


def check_dataset(dataset: Any, config: ActionableConfig) -> None:
    """Raises ConfigError unless the dataset has x-y observations and a batch of steps."""
    if dataset.obs_dim < 2 or dataset.num_steps < config.batch_size:
        raise ConfigError(
            f"the dataset ({dataset.num_steps} steps, observations of size {dataset.obs_dim}) is "
            f"too small: need x-y in the observation and at least batch_size="
            f"{config.batch_size} steps"
        )


def build_network(dataset: Any, config: ActionableConfig) -> tuple[GoalRelabeler, GoalQNetwork]:
    """The relabeler of the dataset and a Q-network whose input normalizer is fitted to 20,000
    relabelled transitions (drawn with their own generator, seeded by ``config.seed``)."""
    net_config = QNetworkConfig(
        obs_dim=dataset.obs_dim, action_dim=dataset.action_dim, hidden=tuple(config.hidden)
    )
    relabeler = GoalRelabeler(dataset, config, net_config.goal_indices)
    network = GoalQNetwork(net_config)
    fit = relabeler.sample(np.random.default_rng(config.seed), 20_000)
    with torch.no_grad():
        features = network.features(
            torch.from_numpy(fit["obs"]),
            torch.from_numpy(fit["actions"]),
            torch.from_numpy(fit["goals"]),
        )
        network.normalizer.fit(features)
    return relabeler, network


class _QLearner:
    """The Q-network, its Polyak target and optimizer, the batch generator ``rng`` and the
    step count: what a checkpoint restores."""

    def __init__(self, network: GoalQNetwork, config: ActionableConfig, rng: np.random.Generator):
        self.network, self.config, self.rng = network, config, rng
        self.target = copy.deepcopy(network).requires_grad_(False)
        self.optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
        self.negative_weight = config.negative_weight if config.negatives else 0.0
        self.step = 0

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One Adam step of :func:`actionable_loss` on ``batch``, then the target's Polyak step."""
        tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
        loss, metrics = actionable_loss(
            self.network, self.target, tensors, self.config.discount, self.negative_weight
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        pairs = zip(self.network.parameters(), self.target.parameters(), strict=True)
        with torch.no_grad():
            for parameter, target in pairs:
                target.lerp_(parameter, self.config.target_tau)
        self.step += 1
        return metrics

    def state(self) -> dict[str, Any]:
        return {
            "network": self.network.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "step": self.step,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.step = int(state["step"])


def _fit(
    learner: _QLearner, relabeler: GoalRelabeler, config: ActionableConfig, run: TrainingRun
) -> None:
    """Steps to ``config.steps``, logging the mean metrics of every :data:`LOG_EVERY` steps."""
    window: list[dict[str, float]] = []
    while learner.step < config.steps:
        window.append(learner.update(relabeler.sample(learner.rng, config.batch_size)))
        postfix = {}
        if learner.step % LOG_EVERY == 0 or learner.step == config.steps:
            mean = {k: float(np.nanmean([m[k] for m in window])) for k in window[0]}
            mean["step"] = learner.step
            window = []
            run.log(learner.step, mean)
            postfix = {"td": f"{mean['td_loss']:.3f}", "q": f"{mean['q_data']:.2f}"}
        run.advance(1, **postfix)
        if learner.step % config.checkpoint_every == 0:
            run.save(learner.state())


def _package(run: TrainingRun, learner: _QLearner, dataset: Any, name: str) -> Path:
    """The Q-network as an :class:`ActionableSkill` package, with farthest-point subgoals of the
    dataset and the links between them."""
    config = learner.config
    observations = np.asarray(dataset.observations, np.float32)
    subset = farthest_point_subset(observations[:, :2], config.num_subgoals, learner.rng)
    links = subgoal_links(
        dataset, observations[subset, :2], config.subgoal_link_radius, config.subgoal_link_tube
    )
    skill = ActionableSkill(
        copy.deepcopy(learner.network).eval(),
        Box(-np.inf, np.inf, shape=(dataset.obs_dim,), dtype=np.float32),
        Box(-1.0, 1.0, shape=(dataset.action_dim,), dtype=np.float32),
        _goal_space(dataset),
        replace(config.policy, action_repeat=dataset.action_repeat),
        observations[subset],
        config.success_radius,
        links,
    )
    return run.package(
        skill,
        name=name,
        description=(
            f"Actionable Models goal-reaching skill (command = x-y goal; value Q(s, a, g)); "
            f"chaining={config.chaining}, negatives={config.negatives}; "
            f"from {dataset.num_episodes} episodes on {dataset.env_id}"
        ),
        training={
            "dataset": {
                "env_id": dataset.env_id,
                "episodes": dataset.num_episodes,
                "steps": dataset.num_steps,
                "created_by": dataset.created_by,
                "collector": dataset.collector,
            },
        },
        metrics={
            "steps": learner.step,
            "wall_seconds_this_session": round(run.seconds, 1),
            **{k: v for k, v in run.history[-1].items() if k != "step"},
        },
    )


def _goal_space(dataset: Any) -> Box:
    """The command (goal) box: the env's bounds when known, else the data's x-y range."""
    try:
        import envs

        env = envs.make_env(dataset.env_id)
        low, high = env.unwrapped.layout.bounds
        env.close()
    except (ValueError, AttributeError):
        xy = np.asarray(dataset.observations)[:, :2]
        low, high = xy.min(0), xy.max(0)
    return Box(np.asarray(low, np.float32), np.asarray(high, np.float32), dtype=np.float32)

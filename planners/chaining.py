"""Subgoal chaining with a goal-conditioned value (Actionable Models, Chebotar et al. 2021).

For a goal ``g`` that the skill may not reach directly, :class:`SubgoalChaining` picks a subgoal
among dataset states ``g_sub`` (shipped in the skill package) by their values
``V(s, g) = max_a Q(s, a, g)``. Reachability composes through intermediate states (survey notes,
"goal chaining"): the paper scores one subgoal by ``min(V(s, g_sub), V(g_sub, g))``; here the
same values are chained over as many subgoals as needed. A pair of subgoals ``(i, j)`` gets the
cost ``-log V(g_i, g_j) + hop_cost`` (``-log`` of a probability of reaching, so costs add where
probabilities multiply) when the data links them (``subgoal_links[i, j]``: a trajectory goes from
near ``g_i`` to near ``g_j`` in a nearly straight line), they are within ``edge_max_distance``
and ``V >= min_edge_value``; no edge otherwise. All-pairs shortest paths are computed once per
skill (Floyd-Warshall). This is search on the replay buffer (Eysenbach et al. 2019) with the
Actionable Models value as the edge weight. Only linked pairs are trusted because elsewhere the
offline Q extrapolates: in the maze it rates a goal 2 m behind a wall nearly as reachable as one
2 m away in the open.

Per goal (:meth:`SubgoalChaining.set_goal`) the cost from every subgoal to ``g`` is one
``(M, M)`` min-plus product. The agent then follows the cheapest chain from the subgoal nearest
to it, waypoint by waypoint, and skips ahead to a later waypoint (or ``g``) as soon as the data
links it to the last waypoint reached and ``V(s, waypoint) >= min_edge_value``: the subgoal is
re-chosen as the agent moves, but only forward along one chain (re-scoring every subgoal at every
step made the agent dither between chains of nearly equal cost). A link the agent stops making
progress along is blocked for the rest of the goal and the chain re-planned from the last
waypoint reached. Optional ``subgoal_links`` on the skill (all pairs when absent).

Any skill fits whose command is an x-y goal, that offers a ``value`` component
(:class:`~hrl_runtime.skill.SkillValue`) and a ``subgoals`` array ``(M, do)`` of observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hrl_runtime.errors import IncompatibleError
from hrl_runtime.high_level import HighLevel
from hrl_runtime.skill import Skill


@dataclass(frozen=True)
class ChainingConfig:
    """Configuration of :class:`SubgoalChaining`."""

    edge_max_distance: float = 4.0
    """Metres: pairs farther apart than this get no edge (short edges rest on single
    trajectories of the data, where Q is reliable)."""
    min_edge_value: float = 0.01
    """Pairs with ``V`` below this get no edge (too unlikely to be reached directly)."""
    hop_cost: float = 0.1
    """Added per edge, nats: among equally likely chains, prefer fewer (longer) hops."""
    waypoint_radius: float = 0.6
    """Metres: a waypoint this close counts as reached and the next one becomes the target."""
    lookahead: int = 4
    """Waypoints ahead of the current one considered for skipping."""
    stall_window: int = 20
    """Optimizations (one per ``hold_steps``) over which progress is judged."""
    stall_distance: float = 0.3
    """Moving less than this over ``stall_window`` optimizations means the target is not
    reachable from here: it is dropped until the next goal and the chain re-planned. Metres."""


def value_action_set(action_space: Any, seed: int = 0, count: int = 16) -> np.ndarray:
    """The actions ``V(s, g) = max_a Q(s, a, g)`` is maximized over: ``(A, da)``.

    For planar actions, 8 directions at full actuation and 8 at half; otherwise ``count``
    uniform samples of the action box.
    """
    low = np.asarray(action_space.low, np.float32)
    high = np.asarray(action_space.high, np.float32)
    if low.shape == (2,):
        angles = np.arange(8) * np.pi / 4
        directions = np.stack([np.cos(angles), np.sin(angles)], 1)
        directions /= np.abs(directions).max(1, keepdims=True)  # reach the box edge
        centre, half = (high + low) / 2, (high - low) / 2
        actions = np.concatenate([centre + half * directions, centre + 0.5 * half * directions])
        return actions.astype(np.float32)
    return np.random.default_rng(seed).uniform(low, high, (count, len(low))).astype(np.float32)


def edge_costs(
    values: np.ndarray, distances: np.ndarray, links: np.ndarray, config: ChainingConfig
) -> np.ndarray:
    """``-log V + hop_cost`` where an edge is trusted, ``inf`` elsewhere.

    Args:
        values: ``(...)`` ``V`` in [0, 1].
        distances: ``(...)`` Euclidean distances of the same pairs, metres.
        links: ``(...)`` bool, whether the data connects the pair.
        config: the thresholds.

    Returns:
        ``(...)`` costs in nats.
    """
    trusted = links & (values >= config.min_edge_value) & (distances <= config.edge_max_distance)
    with np.errstate(divide="ignore"):
        costs = -np.log(values) + config.hop_cost
    return np.where(trusted, costs, np.inf)


def shortest_paths(costs: np.ndarray) -> np.ndarray:
    """All-pairs shortest path costs (Floyd-Warshall): ``(M, M) -> (M, M)``, zero diagonal."""
    paths = costs.copy()
    np.fill_diagonal(paths, 0.0)
    for k in range(len(paths)):
        np.minimum(paths, paths[:, k : k + 1] + paths[k : k + 1, :], out=paths)
    return paths


class SubgoalChaining(HighLevel):
    """Chooses subgoals among dataset states by chained values; a goal-conditioned high level.

    Args:
        skill: a goal-commanded skill with ``value`` and ``subgoals``.
        config: thresholds.
        xy_indices: observation entries holding x-y (what goals refer to).

    Raises:
        IncompatibleError: the skill lacks the value, the subgoals, or goal commands.
    """

    def __init__(
        self,
        skill: Skill,
        config: ChainingConfig | None = None,
        xy_indices: tuple[int, int] = (0, 1),
    ):
        label = skill.name or type(skill).__name__
        subgoals = getattr(skill, "subgoals", None)
        if skill.value is None or subgoals is None or not getattr(skill, "command_is_goal", False):
            raise IncompatibleError(
                f"--planner chaining needs a skill whose command is a goal, with a value "
                f"component and packaged subgoal states; {label!r} has value="
                f"{skill.value is not None}, subgoals={subgoals is not None}; use an "
                "Actionable Models skill (kind am, e.g. am-maze)"
            )
        self.config = config or ChainingConfig()
        self.value = skill.value
        self.xy_indices = list(xy_indices)
        self.subgoals = np.asarray(subgoals, np.float32)  # (M, do)
        self.subgoal_xy = self.subgoals[:, self.xy_indices]  # (M, 2)
        self.actions = value_action_set(skill.action_space)  # (A, da)
        m, a = len(self.subgoals), len(self.actions)
        links = getattr(skill, "subgoal_links", None)
        #: ``(M, M)`` bool: the data goes from subgoal i to subgoal j.
        self.links = np.ones((m, m), bool) if links is None else np.asarray(links, bool)
        # Buffers for the M x A evaluations of one optimization, allocated once.
        self._obs_tiled = np.zeros((m * a, self.subgoals.shape[1]), np.float32)
        self._actions_tiled = np.tile(self.actions, (m, 1))
        self._subgoals_tiled = np.repeat(self.subgoals, a, axis=0)
        self._subgoal_goals = np.repeat(self.subgoal_xy, a, axis=0)
        self._goal_tiled = np.zeros((m * a, 2), np.float32)
        pair_values = np.stack(
            [
                self._max_value(self._subgoals_tiled, np.broadcast_to(xy, (m * a, 2)), m)
                for xy in self.subgoal_xy
            ],
            axis=1,
        )  # (M from, M to)
        pair_distances = np.linalg.norm(self.subgoal_xy[:, None] - self.subgoal_xy[None], axis=-1)
        #: ``(M, M)`` cost of each edge (``inf``: none), nats.
        self.edges = edge_costs(pair_values, pair_distances, self.links, self.config)
        np.fill_diagonal(self.edges, np.inf)
        #: ``(M, M)`` least chained cost between subgoals, nats.
        self.paths = shortest_paths(self.edges)
        self._goal = np.zeros(2, np.float32)
        self._goal_anchor = 0
        self._to_goal = np.full(m, np.inf)
        self._last_cost = np.full(m, np.inf)
        self._obs = np.zeros(self.subgoals.shape[1], np.float32)
        self._target = np.zeros(2, np.float32)
        self._chain: list[int] = []
        self._position = 0
        self._anchor = -1  # the last waypoint reached
        self._has_goal = False
        self._dropped = np.zeros(m, bool)
        self._usable = self.links.copy()  # links not (yet) found blocked during this goal
        self._history = np.zeros(max(self.config.stall_window, 1), np.float32)
        self._count = 0

    def _max_value(self, obs: np.ndarray, goals: np.ndarray, count: int) -> np.ndarray:
        """``max_a Q`` per block of A rows.

        ``obs (count*A, do)``, ``goals (count*A, 2)`` -> ``(count,)``.
        """
        values = self.value.value(obs, self._actions_tiled[: len(obs)], goals)
        return values.reshape(count, len(self.actions)).max(1)

    def set_goal(self, goal: np.ndarray) -> None:
        """Sets ``g`` (x-y, metres) and the chained cost from every subgoal to it."""
        self._goal[:] = goal
        self._goal_tiled[:] = goal
        last = self._max_value(self._subgoals_tiled, self._goal_tiled, len(self.subgoals))
        distances = np.linalg.norm(self.subgoal_xy - self._goal, axis=1)
        self._goal_anchor = int(np.argmin(distances))
        self._last_cost = edge_costs(last, distances, self.links[:, self._goal_anchor], self.config)
        self._to_goal = (self.paths + self._last_cost[None, :]).min(1)
        self._target[:] = goal
        self._chain = []
        self._position = 0
        self._anchor = -1
        self._has_goal = True
        self._dropped[:] = False
        self._usable[:] = self.links
        self._count = 0

    def reset(self, obs: np.ndarray) -> None:
        self._chain = []
        self.set_state(obs)

    def set_state(self, obs: np.ndarray) -> None:
        self._obs[:] = obs

    def _plan(self) -> None:
        """The cheapest chain of subgoals to ``g`` from the last waypoint reached (at first, the
        subgoal nearest to the agent).

        Follows ``next(i) = argmin_j edges[i, j] + to_goal[j]`` (the Bellman choice on the
        shortest-path costs) until going straight for ``g`` is the cheapest; dropped subgoals are
        avoided. The chain starts with that waypoint when the agent has left it (after a stall,
        it goes back to where the data's links start) and ends with ``-1``, standing for ``g``.
        """
        xy = self._obs[self.xy_indices]
        distances = np.linalg.norm(self.subgoal_xy - xy, axis=1)
        if self._anchor < 0 or self._dropped[self._anchor]:
            self._anchor = int(np.argmin(distances))
        node = self._anchor
        usable = np.where(self._dropped, np.inf, 0.0)
        chain = [node] if distances[node] >= self.config.waypoint_radius else []
        for _ in range(len(self.subgoals)):
            via = np.where(self._usable[node], self.edges[node], np.inf) + self._to_goal + usable
            best = int(np.argmin(via))
            done = self._last_cost[node] <= via[best] or not np.isfinite(via[best])
            if done or best in chain:
                break
            chain.append(best)
            node = best
        self._chain, self._position = [*chain, -1], 0

    def optimize(self) -> None:
        """Advances along the chain (re-planned when empty or stalled); sets the target."""
        if not self._has_goal:
            return
        if self._check_stall() or not self._chain:
            self._plan()
        config, a = self.config, len(self.actions)
        xy = self._obs[self.xy_indices]
        chain = self._chain
        # Reached waypoints: move on (the data's links now start there).
        while chain[self._position] >= 0 and (
            np.linalg.norm(self.subgoal_xy[chain[self._position]] - xy) < config.waypoint_radius
        ):
            self._anchor = chain[self._position]
            self._position += 1
        # Skip ahead to the farthest of the next waypoints the data links to from the last
        # waypoint reached, if V from here agrees.
        ahead = chain[self._position + 1 : self._position + 1 + config.lookahead]
        if ahead:
            anchors = np.array([self._goal_anchor if i < 0 else i for i in ahead])
            goals = np.where(
                np.array(ahead)[:, None] < 0, self._goal, self.subgoal_xy[anchors]
            ).astype(np.float32)
            rows = len(ahead) * a
            self._obs_tiled[:rows] = self._obs
            values = self._max_value(
                self._obs_tiled[:rows], np.repeat(goals, a, axis=0), len(ahead)
            )
            distances = np.linalg.norm(goals - xy, axis=1)
            linked = np.where(
                np.array(ahead) < 0,
                np.isfinite(self._last_cost[self._anchor]),
                self._usable[self._anchor, anchors],
            )
            costs = edge_costs(values, distances, linked, config)
            reachable = np.flatnonzero(np.isfinite(costs))
            if len(reachable):
                self._position += 1 + int(reachable[-1])
        current = chain[self._position]
        target = self._goal if current < 0 else self.subgoal_xy[current]
        if not np.array_equal(target, self._target):
            self._count = 0  # progress is judged per target
        self._target[:] = target

    def _check_stall(self) -> bool:
        """Blocks the link to the current target when the agent got less than ``stall_distance``
        closer to it over the last ``stall_window`` optimizations (pressed against a wall, or
        circling).

        Returns:
            Whether it did (the chain must be re-planned).
        """
        window = len(self._history)
        distance = np.linalg.norm(self._obs[self.xy_indices] - self._target)
        oldest = self._history[self._count % window]  # written ``window`` optimizations ago
        self._history[self._count % window] = distance
        self._count += 1
        if self._count <= window or not self._chain:
            return False
        if oldest - distance >= self.config.stall_distance:
            return False
        # The link from the last waypoint reached to the target failed: block it for this goal.
        current = self._chain[self._position]
        if current < 0:
            self._last_cost[self._anchor] = np.inf
        elif current == self._anchor:
            self._dropped[current] = True  # cannot even get back there: re-anchor
        else:
            self._usable[self._anchor, current] = False
        self._count = 0
        return True

    def command(self, obs: np.ndarray, t: int) -> np.ndarray:
        return self._target.copy()

    def plan_info(self) -> dict[str, Any]:
        remaining = self._chain[self._position :] if self._chain else []
        return {
            "subgoal": self._target.copy(),
            "subgoal_index": remaining[0] if remaining else -1,
            "chain": np.array([self._goal if i < 0 else self.subgoal_xy[i] for i in remaining]),
        }

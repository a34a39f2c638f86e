"""Subgoal chaining with a goal-conditioned value (Actionable Models, Chebotar et al. 2021).

For a goal ``g`` that the skill may not reach directly, :class:`SubgoalChaining` picks subgoals
among dataset states ``g_sub`` (shipped in the skill package) by their values
``V(s, g) = max_a Q(s, a, g)``. Reachability composes through intermediate states (survey notes,
"goal chaining"): the paper scores one subgoal by ``min(V(s, g_sub), V(g_sub, g))``; here the
same values are chained over as many subgoals as needed. A pair of subgoals ``(i, j)`` gets the
cost ``-log V(g_i, g_j) + hop_cost`` (``-log`` of a probability of reaching, so costs add where
probabilities multiply) when the data joins them by a straight run (``subgoal_links[i, j]``, see
:func:`skill_library.actionable.train.subgoal_links`), they are within ``edge_max_distance`` and
``V >= min_edge_value``; no edge otherwise. This is search on the replay buffer (Eysenbach et al.
2019) with the Actionable Models value as the edge weight. Only linked pairs are trusted because
elsewhere the offline Q extrapolates: in the maze it rates a goal 2 m behind a wall nearly as
reachable as one 2 m away in the open, and its greedy policy then pushes into the wall.

The last hop, to ``g`` itself, leaves from the subgoal nearest to ``g`` (its *goal anchor*), or
from a subgoal linked to that anchor when ``g`` lies within ``goal_link_radius`` of it. Per goal
(:meth:`SubgoalChaining.set_goal`) one Dijkstra pass over the ``(M, M)`` edges gives every
subgoal's cost to go and its successor; the agent starts from the subgoal nearest to it and
follows the successors waypoint by waypoint, skipping ahead when it stands on a subgoal linked to
a later waypoint. A hop the agent stops making progress along (pressed against a wall, circling;
judged over control steps) is blocked for the rest of the goal and the chain re-planned from where
the agent is. When no
chain exists the command is ``g`` itself, as a plain goal sequence would send.

Any skill fits whose command is an x-y goal, that offers a ``value`` component
(:class:`~hrl_runtime.skill.SkillValue`) and a ``subgoals`` array ``(M, do)`` of observations;
``subgoal_links`` ``(M, M)`` is optional (all pairs when absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse.csgraph import csgraph_from_dense, dijkstra

from hrl_runtime.errors import IncompatibleError
from hrl_runtime.high_level import HighLevel
from hrl_runtime.skill import Skill


@dataclass(frozen=True)
class ChainingConfig:
    """Configuration of :class:`SubgoalChaining`."""

    reversible: bool = True
    """Use a straight run of the data both ways: a wall-free segment is wall-free in either
    direction, and a holonomic base such as the point mass drives it back as well as forth
    (without this, subgoals in corners that trajectories only end at have no way out). Set it
    False for platforms whose motions do not reverse."""
    edge_max_distance: float = 4.0
    """Metres: pairs farther apart than this get no edge (short edges rest on single
    trajectories of the data, where Q is reliable)."""
    min_edge_value: float = 0.01
    """Pairs with ``V`` below this get no edge (too unlikely to be reached directly)."""
    hop_cost: float = 0.1
    """Added per edge, nats: among equally likely chains, prefer fewer (longer) hops."""
    goal_link_radius: float = 0.35
    """Metres: a goal this close to its anchor subgoal is reached straight from the anchor's
    linked subgoals; farther goals only from the anchor itself."""
    waypoint_radius: float = 0.5
    """Metres: a waypoint this close counts as reached and the next one becomes the target."""
    shortcut_radius: float = 0.35
    """Metres: standing this close to a subgoal, the agent may skip ahead along its links."""
    lookahead: int = 4
    """Waypoints ahead of the current one considered for skipping."""
    stall_steps: int = 150
    """Control steps over which progress is judged (1.5 s at 100 Hz), counted by the step
    index of ``command(obs, t)``, so that it holds however often the planner optimizes (once
    per ``hold_steps`` in the synchronous loop, up to once per tick in its own thread)."""
    stall_distance: float = 0.3
    """Not getting this much closer to the target within ``stall_steps`` means the hop is not
    working: it is blocked until the next goal. Metres."""


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


def costs_to_go(edges: np.ndarray, final: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dijkstra towards the goal over a dense graph (scipy's, on the reversed edges).

    Args:
        edges: ``(M, M)`` non-negative cost of hop ``i -> j`` (``inf``: no edge).
        final: ``(M,)`` cost of the last hop from ``i`` to the goal (``inf``: none).

    Returns:
        ``(M,)`` least cost from each node to the goal, and ``(M,)`` the next node on that
        chain (``-1``: the goal itself; also for nodes with no chain, whose cost is ``inf``).
    """
    m = len(final)
    # Node m is the goal. Reversed, every chain starts there: one single-source search.
    reverse = np.full((m + 1, m + 1), np.inf)
    reverse[:m, :m] = edges.T
    reverse[m, :m] = final
    graph = csgraph_from_dense(reverse, null_value=np.inf)
    cost, predecessor = dijkstra(graph, directed=True, indices=m, return_predecessors=True)
    successor = np.where((predecessor[:m] >= 0) & (predecessor[:m] < m), predecessor[:m], -1)
    return cost[:m], successor.astype(np.int64)


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
        #: ``(M, M)`` bool: the data runs straight from subgoal i to subgoal j.
        self.links = np.ones((m, m), bool) if links is None else np.asarray(links, bool)
        if self.config.reversible:
            self.links = self.links | self.links.T
        self._actions_tiled = np.tile(self.actions, (m, 1))  # (M*A, da)
        subgoals_tiled = np.repeat(self.subgoals, a, axis=0)  # (M*A, do)
        pair_values = np.stack(
            [
                self._max_value(subgoals_tiled, np.broadcast_to(xy, (m * a, 2)), m)
                for xy in self.subgoal_xy
            ],
            axis=1,
        )  # (M from, M to)
        pair_distances = np.linalg.norm(self.subgoal_xy[:, None] - self.subgoal_xy[None], axis=-1)
        #: ``(M, M)`` cost of each edge (``inf``: none), nats.
        self.edges = edge_costs(pair_values, pair_distances, self.links, self.config)
        np.fill_diagonal(self.edges, np.inf)
        # Per goal: the edges still usable, the last hops, the chain and the stall record.
        self._usable_edges = self.edges.copy()
        self._final = np.full(m, np.inf)
        self._to_goal = np.full(m, np.inf)
        self._successor = np.full(m, -1, np.int64)
        self._goal = np.zeros(2, np.float32)
        self._obs = np.zeros(self.subgoals.shape[1], np.float32)
        self._target = np.zeros(2, np.float32)
        self._chain: list[int] = []
        self._position = 0
        self._anchor = -1  # the last waypoint reached (or the chain's start), -1: none
        self._has_goal = False
        self._tick = 0  # the step index of the latest command(obs, t)
        self._reference_tick = 0  # progress towards the target is measured since this step...
        self._reference_distance = np.inf  # ... from this distance, metres

    def _max_value(self, obs: np.ndarray, goals: np.ndarray, count: int) -> np.ndarray:
        """``max_a Q`` per block of A rows.

        ``obs (count*A, do)``, ``goals (count*A, 2)`` -> ``(count,)``.
        """
        values = self.value.value(obs, self._actions_tiled[: len(obs)], goals)
        return values.reshape(count, len(self.actions)).max(1)

    def set_goal(self, goal: np.ndarray) -> None:
        """Sets ``g`` (x-y, metres), its last hops and every subgoal's cost to go."""
        config = self.config
        self._goal[:] = goal
        distances = np.linalg.norm(self.subgoal_xy - self._goal, axis=1)
        anchor = int(np.argmin(distances))
        if distances[anchor] <= config.goal_link_radius:
            sources = self.links[:, anchor].copy()
        else:
            sources = np.zeros(len(self.subgoals), bool)
        sources[anchor] = True
        # V(g_i, g) of the subgoals the last hop may leave from (a few: this runs in a tick).
        rows, a = np.flatnonzero(sources), len(self.actions)
        values = np.zeros(len(self.subgoals))
        values[rows] = self._max_value(
            np.repeat(self.subgoals[rows], a, axis=0),
            np.broadcast_to(self._goal, (len(rows) * a, 2)),
            len(rows),
        )
        self._final = edge_costs(values, distances, sources, config)
        # The anchor always has its last hop: it is the subgoal nearest to g.
        self._final[anchor] = min(self._final[anchor], -np.log(max(values[anchor], 1e-6)))
        self._usable_edges[:] = self.edges
        self._replan_costs()
        self._target[:] = goal
        self._chain = []
        self._has_goal = True
        self._reference_distance = np.inf

    def _replan_costs(self) -> None:
        self._to_goal, self._successor = costs_to_go(self._usable_edges, self._final)

    def reset(self, obs: np.ndarray) -> None:
        self._chain = []
        self.set_state(obs)

    def set_state(self, obs: np.ndarray) -> None:
        self._obs[:] = obs

    def _plan(self) -> None:
        """The cheapest chain to ``g`` from the subgoal nearest to the agent that has one.

        The chain lists subgoal indices and ends with ``-1``, standing for ``g``; it starts with
        that nearest subgoal unless the agent already stands on it. Without any chain it is
        ``[-1]``: straight for the goal.
        """
        xy = self._obs[self.xy_indices]
        distances = np.linalg.norm(self.subgoal_xy - xy, axis=1)
        candidates = np.where(np.isfinite(self._to_goal), distances, np.inf)
        node = int(np.argmin(candidates))
        if not np.isfinite(candidates[node]):
            self._chain, self._position, self._anchor = [-1], 0, -1
            return
        chain = [node]
        while self._successor[chain[-1]] >= 0 and len(chain) <= len(self.subgoals):
            chain.append(int(self._successor[chain[-1]]))
        if distances[node] < self.config.waypoint_radius:
            self._anchor, chain = node, chain[1:]
        else:
            self._anchor = -1  # the approach to the first subgoal is no edge of the graph
        self._chain, self._position = [*chain, -1], 0

    def optimize(self) -> None:
        """Advances along the chain (re-planned when empty or stalled); sets the target."""
        if not self._has_goal:
            return
        if not self._chain or self._check_stall():
            self._plan()
        config, chain = self.config, self._chain
        xy = self._obs[self.xy_indices]
        # Reached waypoints: move on (the chain's next hop leaves from there).
        while chain[self._position] >= 0 and (
            np.linalg.norm(self.subgoal_xy[chain[self._position]] - xy) < config.waypoint_radius
        ):
            self._anchor = chain[self._position]
            self._position += 1
        # Standing on a subgoal: skip to the farthest of the next waypoints it is linked to.
        distances = np.linalg.norm(self.subgoal_xy - xy, axis=1)
        here = int(np.argmin(distances))
        if distances[here] <= config.shortcut_radius:
            ahead = chain[self._position + 1 : self._position + 1 + config.lookahead]
            for offset in range(len(ahead), 0, -1):
                nxt = ahead[offset - 1]
                cost = self._final[here] if nxt < 0 else self._usable_edges[here, nxt]
                if np.isfinite(cost):
                    self._anchor = here
                    self._position += offset
                    break
        current = chain[self._position]
        target = self._goal if current < 0 else self.subgoal_xy[current]
        if not np.array_equal(target, self._target):
            self._reference_distance = np.inf  # progress is judged per target
        self._target[:] = target

    def _check_stall(self) -> bool:
        """Blocks the current hop when the agent has not got ``stall_distance`` closer to its
        target within the last ``stall_steps`` control steps.

        Returns:
            Whether it did (the chain must be re-planned).
        """
        distance = float(np.linalg.norm(self._obs[self.xy_indices] - self._target))
        # Progress (or a new target, whose reference distance is inf) restarts the measurement.
        if distance <= self._reference_distance - self.config.stall_distance:
            self._reference_tick, self._reference_distance = self._tick, distance
            return False
        if self._tick - self._reference_tick < self.config.stall_steps or not self._chain:
            return False
        current = self._chain[self._position]
        if current < 0 and self._anchor >= 0:
            self._final[self._anchor] = np.inf
        elif current < 0 or self._anchor < 0:
            # No graph hop failed: the approach to a first subgoal, or the goal with no chain.
            # Make whatever the agent stalled towards unusable as a first subgoal.
            if current >= 0:
                self._usable_edges[current, :] = np.inf
                self._final[current] = np.inf
        else:
            self._usable_edges[self._anchor, current] = np.inf
        self._replan_costs()
        self._reference_distance = np.inf
        return True

    def command(self, obs: np.ndarray, t: int) -> np.ndarray:
        self._tick = int(t)
        return self._target.copy()

    def plan_info(self) -> dict[str, Any]:
        """The current target, its subgoal index (-1: the goal) and the chain still ahead:
        ``chain (n, 2)`` waypoints ending at the goal, ``trajectory (n + 1, 2)`` the same from
        the agent's position (x-y, for plots)."""
        remaining = self._chain[self._position :] if self._chain else []
        chain = np.array(
            [self._goal if i < 0 else self.subgoal_xy[i] for i in remaining], np.float32
        ).reshape(-1, 2)
        return {
            "subgoal": self._target.copy(),
            "subgoal_index": remaining[0] if remaining else -1,
            "chain": chain,
            "trajectory": np.concatenate([self._obs[self.xy_indices][None], chain]),
        }

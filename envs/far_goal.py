"""Fixed-goal tasks on the point-mass mazes, and BFS distances over maze cells.

``hrl/PointMazeFar-v0``: the point mass starts at the maze's ``S`` cell and must reach a fixed
goal at the centre of the free cell farthest (in 4-connected BFS steps) from ``S``, within
0.5 m. The reward is sparse (1.0 on success, else 0.0), the episode terminates on success, and
the time limit is 3000 control steps (30 s). It needs long-horizon exploration or a planner.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np

from envs.goals import GoalFollowing
from envs.layout import Cell, MazeLayout
from envs.point_mass import PointMassConfig, PointMassEnv

FAR_GOAL_SUCCESS_RADIUS = 0.5
"""Success radius of ``hrl/PointMazeFar-v0``, metres."""

_MOVES: tuple[Cell, ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))


def bfs_cell_distances(layout: MazeLayout, source: Cell) -> np.ndarray:
    """Number of 4-connected moves from a free cell to every cell of a layout.

    Args:
        layout: The maze.
        source: ``(row, col)`` of a free cell.

    Returns:
        ``(nrows, ncols)`` int64 distances in cells; ``-1`` for walls (and unreachable cells).

    Raises:
        ValueError: If ``source`` is not a free cell of the layout.
    """
    free = np.array([[ch != "#" for ch in row] for row in layout.rows], dtype=bool)
    r0, c0 = source
    if not (0 <= r0 < layout.nrows and 0 <= c0 < layout.ncols and free[r0, c0]):
        raise ValueError(
            f"bfs_cell_distances: source cell {source} is not a free cell of layout "
            f"{layout.name}; pass one of layout.free_cells."
        )
    distances = np.full(free.shape, -1, dtype=np.int64)
    distances[r0, c0] = 0
    queue = deque([(r0, c0)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in _MOVES:
            nr, nc = r + dr, c + dc
            # The border is all walls (validated by MazeLayout), so neighbours stay in range.
            if free[nr, nc] and distances[nr, nc] < 0:
                distances[nr, nc] = distances[r, c] + 1
                queue.append((nr, nc))
    return distances


def farthest_cell(layout: MazeLayout, source: Cell | None = None) -> Cell:
    """The free cell farthest in BFS moves from ``source`` (first in reading order on ties).

    Args:
        layout: The maze.
        source: ``(row, col)`` of a free cell; default: the layout's ``S`` cell.

    Returns:
        ``(row, col)`` of the farthest cell.
    """
    distances = bfs_cell_distances(layout, layout.start_cell if source is None else source)
    row, col = np.unravel_index(int(np.argmax(distances)), distances.shape)
    return int(row), int(col)


class FixedGoal(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Pins the goal of a :class:`GoalFollowing` env: every reset uses the same goal.

    The goal is readable as ``env.get_wrapper_attr("goal")``; other reset options (e.g.
    ``start_xy``) pass through.

    Args:
        env: A :class:`GoalFollowing` env, possibly wrapped.
        goal: ``(2,)`` fixed x-y goal, metres.

    Raises:
        ValueError: If the env does not follow goals or the goal is not in its goal space.
    """

    def __init__(self, env: gymnasium.Env, goal: Sequence[float] | np.ndarray) -> None:
        # Recorded as plain floats: the env spec compares recorded kwargs with ``==``.
        gymnasium.utils.RecordConstructorArgs.__init__(
            self, goal=tuple(float(v) for v in np.asarray(goal, dtype=np.float64).reshape(-1))
        )
        gymnasium.Wrapper.__init__(self, env)
        try:
            set_goal = env.get_wrapper_attr("set_goal")
        except AttributeError as error:
            raise ValueError(
                f"FixedGoal: {env} has no set_goal; wrap it in envs.GoalFollowing first."
            ) from error
        set_goal(goal)  # validates against the goal space
        self._fixed_goal = np.asarray(goal, dtype=np.float64).copy()
        self._fixed_goal.flags.writeable = False

    @property
    def goal(self) -> np.ndarray:
        """The fixed goal, ``(2,)`` metres (a copy)."""
        return self._fixed_goal.copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets the env with the fixed goal.

        Args:
            seed: Seed for the env's ``np_random``.
            options: Passed on (e.g. ``{"start_xy": (x, y)}``); must not set another goal.

        Returns:
            ``(obs, info)``.

        Raises:
            ValueError: If ``options["goal"]`` differs from the fixed goal.
        """
        options = dict(options or {})
        if "goal" in options and not np.allclose(options["goal"], self._fixed_goal):
            raise ValueError(
                f"FixedGoal.reset: this task's goal is fixed at {self._fixed_goal.tolist()}, got "
                f"options['goal']={options['goal']}; use hrl/PointMaze-v0 with "
                "envs.GoalFollowing for other goals."
            )
        options["goal"] = self._fixed_goal
        return self.env.reset(seed=seed, options=options)


def make_point_maze_far(
    layout: MazeLayout | str = "maze",
    config: PointMassConfig | None = None,
    render_mode: str | None = None,
) -> gymnasium.Env:
    """The ``hrl/PointMazeFar-v0`` task (the Gymnasium entry point; use ``envs.make_env``).

    Args:
        layout: A :class:`MazeLayout` or shipped layout name.
        config: Physical constants of the point mass.
        render_mode: ``None`` or ``"rgb_array"``.

    The goal is the layout's marked ``G`` cell (in the shipped maze: the bottom-left room, 11 m
    from the start in a straight line but 30 cells of corridor away, through the other three
    rooms), or the free cell farthest from ``S`` when the layout marks none.

    Returns:
        The point mass with a sparse, terminating, fixed far goal; exposes ``xy_indices``,
        ``goal_space`` and ``goal``.
    """
    env = PointMassEnv(layout, config=config, render_mode=render_mode)
    cells = env.layout.goal_cells
    goal = env.layout.xy_of(cells[0] if cells else farthest_cell(env.layout))
    task = GoalFollowing(
        env,
        success_radius=FAR_GOAL_SUCCESS_RADIUS,
        reward="sparse",
        terminate_on_success=True,
    )
    return FixedGoal(task, goal)

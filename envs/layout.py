"""Grid maze layouts given as text, their geometry, shortest paths and MJCF.

A layout is a rectangle of characters, one row per line:

- ``#`` wall cell,
- ``.`` free cell,
- ``S`` the start cell (exactly one, free),
- ``G`` a default goal cell (optional, any number, free).

The layout is centred at the origin with row 0 at the top (largest y). The centre of cell
``(r, c)`` is ``x = (c - (ncols - 1) / 2) * cell_size``, ``y = ((nrows - 1) / 2 - r) * cell_size``.
"""

from __future__ import annotations

import importlib.resources
from collections import deque
from collections.abc import Sequence

import numpy as np

Cell = tuple[int, int]

_WALL, _FREE, _START, _GOAL = "#", ".", "S", "G"
_KNOWN_CHARS = frozenset(_WALL + _FREE + _START + _GOAL)
# The four grid moves, in the fixed order BFS expands them (keeps paths deterministic).
_MOVES: tuple[Cell, ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))


class MazeLayout:
    """A maze of square cells, parsed and validated from a text layout.

    Build one with :meth:`from_text` or :meth:`load`; the constructor takes the already-split rows.

    Args:
        rows: The layout rows, all the same length, using only ``#.SG``.
        cell_size: Side of one square cell in metres.
        name: Where the layout came from, used in error messages.

    Raises:
        ValueError: If the layout is ragged, uses unknown characters, has no or several ``S``,
            its border is not all walls, or some free cell cannot be reached from ``S``.
    """

    def __init__(self, rows: Sequence[str], cell_size: float = 1.0, name: str = "<text>") -> None:
        self.name = name
        if not np.isfinite(cell_size) or cell_size <= 0:
            raise ValueError(f"layout {name}: cell_size must be a positive number, got {cell_size}")
        self._cell_size = float(cell_size)
        self._rows = tuple(rows)
        self._validate_shape_and_chars()
        self._wall = np.array([[ch == _WALL for ch in row] for row in self._rows], dtype=bool)
        starts = self._cells_with(_START)
        if len(starts) != 1:
            found = "none" if not starts else f"{len(starts)} at (row, col) {starts}"
            raise ValueError(
                f"layout {name}: needs exactly one start cell 'S', found {found}. "
                "Mark a single free cell with 'S'."
            )
        self._start_cell = starts[0]
        self._goal_cells = self._cells_with(_GOAL)
        self._validate_border()
        self._free_cells = [
            (r, c) for r in range(self.nrows) for c in range(self.ncols) if not self._wall[r, c]
        ]
        self._validate_connected()
        self._wall_boxes = self._merge_wall_boxes()
        centres = np.array([self.xy_of(cell) for cell in self._free_cells])
        half = 0.5 * self._cell_size
        self._bounds = (centres.min(axis=0) - half, centres.max(axis=0) + half)

    # ----------------------------------------------------------------------------- construction

    @classmethod
    def from_text(cls, text: str, cell_size: float = 1.0, name: str = "<text>") -> MazeLayout:
        """Parses a layout from text.

        Leading/trailing blank lines and trailing whitespace on each line are ignored.

        Args:
            text: The layout, one row per line.
            cell_size: Side of one square cell in metres.
            name: Where the text came from, used in error messages.

        Returns:
            The validated layout.

        Raises:
            ValueError: If the layout is invalid (see the class docstring).
        """
        lines = [line.rstrip() for line in text.splitlines()]
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        if not lines:
            raise ValueError(f"layout {name}: the text is empty; give rows of '#', '.', 'S', 'G'.")
        return cls(lines, cell_size=cell_size, name=name)

    @classmethod
    def load(cls, name: str, cell_size: float = 1.0) -> MazeLayout:
        """Loads a layout shipped with the package in ``envs/assets/<name>.txt``.

        Args:
            name: Layout name, e.g. ``"arena"`` or ``"maze"``.
            cell_size: Side of one square cell in metres.

        Returns:
            The validated layout.

        Raises:
            ValueError: If no shipped layout has that name.
        """
        assets = importlib.resources.files("envs") / "assets"
        resource = assets / f"{name}.txt"
        if not resource.is_file():
            known = sorted(p.name[:-4] for p in assets.iterdir() if p.name.endswith(".txt"))
            raise ValueError(
                f"no shipped layout named {name!r} (looked for envs/assets/{name}.txt); "
                f"known layouts: {known}. Use MazeLayout.from_text for your own layout."
            )
        return cls.from_text(resource.read_text(), cell_size=cell_size, name=f"{name}.txt")

    def _validate_shape_and_chars(self) -> None:
        width = len(self._rows[0])
        for r, row in enumerate(self._rows):
            if len(row) != width:
                raise ValueError(
                    f"layout {self.name}: row {r} has {len(row)} characters but row 0 has "
                    f"{width}; every row must have the same length (the layout is ragged)."
                )
            for c, ch in enumerate(row):
                if ch not in _KNOWN_CHARS:
                    raise ValueError(
                        f"layout {self.name}: unknown character {ch!r} at row {r}, col {c}; "
                        "use '#' wall, '.' free, 'S' start, 'G' goal."
                    )

    def _cells_with(self, char: str) -> list[Cell]:
        return [
            (r, c) for r, row in enumerate(self._rows) for c, ch in enumerate(row) if ch == char
        ]

    def _validate_border(self) -> None:
        for r in range(self.nrows):
            for c in range(self.ncols):
                on_border = r in (0, self.nrows - 1) or c in (0, self.ncols - 1)
                if on_border and not self._wall[r, c]:
                    raise ValueError(
                        f"layout {self.name}: the border is not closed: cell at row {r}, col {c} "
                        f"is {self._rows[r][c]!r}; the first and last rows and columns must be "
                        "all '#'."
                    )

    def _validate_connected(self) -> None:
        reached = self._bfs_parents(self._start_cell)
        unreached = [cell for cell in self._free_cells if cell not in reached]
        if unreached:
            shown = unreached[:5]
            more = f" and {len(unreached) - 5} more" if len(unreached) > 5 else ""
            raise ValueError(
                f"layout {self.name}: free cells (row, col) {shown}{more} cannot be reached "
                f"from the start cell {self._start_cell}; open a doorway or fill them with '#'."
            )

    def _merge_wall_boxes(self) -> np.ndarray:
        # Horizontal runs of wall cells, as [first_row, last_row, first_col, last_col] ...
        runs: list[list[int]] = []
        for r in range(self.nrows):
            c = 0
            while c < self.ncols:
                if not self._wall[r, c]:
                    c += 1
                    continue
                run_start = c
                while c < self.ncols and self._wall[r, c]:
                    c += 1
                runs.append([r, r, run_start, c - 1])
        # ... then runs spanning the same columns in consecutive rows are stacked into one box
        # (the side walls of a room become one geom instead of one per row).
        merged: list[list[int]] = []
        open_by_cols: dict[tuple[int, int], list[int]] = {}
        for run in runs:
            key = (run[2], run[3])
            previous = open_by_cols.get(key)
            if previous is not None and previous[1] == run[0] - 1:
                previous[1] = run[0]
            else:
                merged.append(run)
                open_by_cols[key] = run
        half = 0.5 * self._cell_size
        boxes = []
        for first_row, last_row, first_col, last_col in merged:
            x0, y1 = self.xy_of((first_row, first_col))
            x1, y0 = self.xy_of((last_row, last_col))
            boxes.append([x0 - half, y0 - half, x1 + half, y1 + half])
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

    # ------------------------------------------------------------------------------- properties

    @property
    def nrows(self) -> int:
        """Number of rows, border included."""
        return len(self._rows)

    @property
    def ncols(self) -> int:
        """Number of columns, border included."""
        return len(self._rows[0])

    @property
    def cell_size(self) -> float:
        """Side of one square cell in metres."""
        return self._cell_size

    @property
    def rows(self) -> tuple[str, ...]:
        """The layout text rows."""
        return self._rows

    @property
    def start_cell(self) -> Cell:
        """The ``(row, col)`` of the ``S`` cell."""
        return self._start_cell

    @property
    def start_xy(self) -> np.ndarray:
        """Centre of the start cell, ``(2,)`` metres."""
        return self.xy_of(self._start_cell)

    @property
    def goal_cells(self) -> list[Cell]:
        """The ``(row, col)`` of every ``G`` cell, in reading order (may be empty)."""
        return list(self._goal_cells)

    @property
    def free_cells(self) -> list[Cell]:
        """The ``(row, col)`` of every non-wall cell, in reading order."""
        return list(self._free_cells)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low (2,), high (2,))`` corners of the box spanned by the free cells, metres."""
        return self._bounds[0].copy(), self._bounds[1].copy()

    @property
    def extent(self) -> tuple[float, float]:
        """Full width and height of the layout (border walls included), metres."""
        return self.ncols * self._cell_size, self.nrows * self._cell_size

    # ------------------------------------------------------------------------------ coordinates

    def xy_of(self, cell: Cell) -> np.ndarray:
        """Centre of a cell.

        Args:
            cell: ``(row, col)``.

        Returns:
            ``(2,)`` x-y in metres.
        """
        r, c = cell
        return np.array(
            [
                (c - (self.ncols - 1) / 2) * self._cell_size,
                ((self.nrows - 1) / 2 - r) * self._cell_size,
            ]
        )

    def cell_of(self, xy: Sequence[float] | np.ndarray) -> Cell:
        """The cell that contains a point (cell edges belong to the cell to the right/below).

        Args:
            xy: ``(2,)`` x-y in metres.

        Returns:
            ``(row, col)``.

        Raises:
            ValueError: If the point lies outside the layout.
        """
        x, y = _as_xy(xy)
        c = int(np.floor(x / self._cell_size + self.ncols / 2))
        r = int(np.floor(self.nrows / 2 - y / self._cell_size))
        if not (0 <= r < self.nrows and 0 <= c < self.ncols):
            half_w, half_h = 0.5 * self.extent[0], 0.5 * self.extent[1]
            raise ValueError(
                f"point ({x:.3f}, {y:.3f}) is outside layout {self.name}, which spans "
                f"x in [{-half_w}, {half_w}], y in [{-half_h}, {half_h}] m."
            )
        return r, c

    def wall_boxes(self) -> np.ndarray:
        """Axis-aligned wall boxes: horizontal runs of wall cells, stacked where they line up.

        Returns:
            ``(M, 4)`` rows ``[xmin, ymin, xmax, ymax]`` in metres (a copy).
        """
        return self._wall_boxes.copy()

    def wall_distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance from points to the nearest wall box (negative inside a wall).

        Args:
            points: ``(N, 2)`` x-y in metres.

        Returns:
            ``(N,)`` distances in metres.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        boxes = self._wall_boxes
        lo, hi = boxes[None, :, :2], boxes[None, :, 2:]
        p = points[:, None, :]
        # Signed distance to an axis-aligned box: outside part plus (negative) inside part.
        d = np.maximum(lo - p, p - hi)  # (N, M, 2)
        outside = np.linalg.norm(np.maximum(d, 0.0), axis=-1)
        inside = np.minimum(d.max(axis=-1), 0.0)
        return (outside + inside).min(axis=1)

    def free_mask(self, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Vectorised :meth:`is_free`.

        Args:
            points: ``(N, 2)`` x-y in metres.
            margin: Required clearance from every wall, metres.

        Returns:
            ``(N,)`` bool.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        low, high = self._bounds
        finite = np.isfinite(points).all(axis=1)
        safe = np.where(finite[:, None], points, 0.0)
        inside = np.all((safe >= low) & (safe <= high), axis=1)
        return finite & inside & (self.wall_distance(safe) >= margin)

    def is_free(self, xy: Sequence[float] | np.ndarray, margin: float = 0.0) -> bool:
        """Whether a point is in free space.

        Args:
            xy: ``(2,)`` x-y in metres.
            margin: Required clearance from every wall box, metres.

        Returns:
            True if the point is finite, inside :attr:`bounds` and at least ``margin`` from
            every wall box.
        """
        return bool(self.free_mask(np.asarray(xy, dtype=np.float64).reshape(1, 2), margin)[0])

    # ------------------------------------------------------------------------------- planning

    def _bfs_parents(self, source: Cell) -> dict[Cell, Cell | None]:
        parents: dict[Cell, Cell | None] = {source: None}
        queue = deque([source])
        while queue:
            r, c = queue.popleft()
            for dr, dc in _MOVES:
                nxt = (r + dr, c + dc)
                if nxt not in parents and not self._wall[nxt]:
                    parents[nxt] = (r, c)
                    queue.append(nxt)
        return parents

    def shortest_path(
        self, start_xy: Sequence[float] | np.ndarray, goal_xy: Sequence[float] | np.ndarray
    ) -> np.ndarray:
        """Shortest 4-connected path over free cells, as waypoints.

        The waypoints are the centres of the cells where the path turns, then the goal itself.
        Every straight segment from ``start_xy`` through the waypoints stays in free space.

        Args:
            start_xy: ``(2,)`` start x-y in metres.
            goal_xy: ``(2,)`` goal x-y in metres.

        Returns:
            ``(N, 2)`` waypoints in metres, ``N >= 1``; the last row equals ``goal_xy``.

        Raises:
            ValueError: If either point is not in free space.
        """
        points = {"start_xy": _as_xy(start_xy), "goal_xy": _as_xy(goal_xy)}
        for label, point in points.items():
            if not self.is_free(point):
                raise ValueError(
                    f"shortest_path: {label}={tuple(point.round(3))} is not in free space of "
                    f"layout {self.name} (it is inside a wall or outside the bounds "
                    f"{[b.tolist() for b in self.bounds]}); pass a point in a free cell."
                )
        start_cell = self.cell_of(points["start_xy"])
        goal_cell = self.cell_of(points["goal_xy"])
        parents = self._bfs_parents(start_cell)
        cells = [goal_cell]
        while cells[-1] != start_cell:
            parent = parents[cells[-1]]
            assert parent is not None  # every free cell is connected to every other (validated)
            cells.append(parent)
        cells.reverse()
        turns = [
            self.xy_of(cells[i])
            for i in range(1, len(cells) - 1)
            if _sub(cells[i], cells[i - 1]) != _sub(cells[i + 1], cells[i])
        ]
        return np.array([*turns, points["goal_xy"]], dtype=np.float64).reshape(-1, 2)

    def sample_free(self, rng: np.random.Generator, n: int, margin: float = 0.0) -> np.ndarray:
        """Samples points uniformly over free space at least ``margin`` from every wall.

        Rejection sampling from the box spanned by the free cells; only ``rng.uniform`` is
        used, so the result is a deterministic function of the generator state.

        Args:
            rng: Random generator (a legacy ``np.random.RandomState`` also works).
            n: Number of points.
            margin: Clearance from walls, metres.

        Returns:
            ``(n, 2)`` x-y in metres.

        Raises:
            ValueError: If ``margin`` leaves (almost) no free space to sample from.
        """
        low, high = self.bounds
        found: list[np.ndarray] = []
        count = 0
        batch = max(16, 2 * n)
        for _ in range(1000):
            if count >= n:
                break
            candidates = rng.uniform(low, high, size=(batch, 2))
            accepted = candidates[self.free_mask(candidates, margin)]
            found.append(accepted)
            count += len(accepted)
        if count < n:
            raise ValueError(
                f"sample_free: found only {count} of {n} points at least {margin} m from the "
                f"walls of layout {self.name} (cell size {self.cell_size} m); use a smaller margin."
            )
        return np.concatenate(found)[:n]

    # ----------------------------------------------------------------------------------- MJCF

    def to_mjcf(
        self,
        *,
        agent_radius: float = 0.2,
        agent_mass: float = 1.0,
        gear: float = 10.0,
        damping: float = 5.0,
        timestep: float = 0.005,
        wall_height: float = 0.5,
    ) -> str:
        """MJCF for a planar actuated point mass in this maze.

        The agent is a sphere on x and y slide joints (``qpos`` is its x-y, no z joint) with two
        motors; gravity is off. Walls are static boxes the sphere collides with, frictionless
        (``condim=1``) so it slides along them. A fixed top-down camera ``"top"`` sees the whole
        layout. Terminal speed is ``gear / damping``, the velocity time constant
        ``agent_mass / damping``.

        Args:
            agent_radius: Sphere radius, metres.
            agent_mass: Sphere mass, kg.
            gear: Motor gear: force in newtons at ``ctrl = 1``.
            damping: Viscous damping of each slide joint, N s/m.
            timestep: Physics timestep, seconds.
            wall_height: Wall height, metres.

        Returns:
            The MJCF model as a string.
        """
        width, height = self.extent
        # Camera height so that a 45 degree field of view sees the whole layout, plus 5%.
        camera_z = 1.05 * 0.5 * max(width, height) / np.tan(np.deg2rad(22.5))
        hz = 0.5 * wall_height
        walls = "\n".join(
            f'    <geom name="wall{i}" class="wall" pos="{(x0 + x1) / 2:.6g} {(y0 + y1) / 2:.6g} '
            f'{hz:.6g}" size="{(x1 - x0) / 2:.6g} {(y1 - y0) / 2:.6g} {hz:.6g}"/>'
            for i, (x0, y0, x1, y1) in enumerate(self._wall_boxes)
        )
        return f"""<mujoco model="point_mass_{self.name}">
  <compiler angle="radian"/>
  <option timestep="{timestep}" gravity="0 0 0"/>
  <visual>
    <global offwidth="640" offheight="640"/>
  </visual>
  <default>
    <geom condim="1" solref="0.01 1" solimp="0.95 0.99 0.001"/>
    <default class="wall">
      <geom type="box" rgba="0.45 0.45 0.5 1"/>
    </default>
  </default>
  <worldbody>
    <light pos="0 0 {camera_z:.6g}" dir="0 0 -1" directional="true"/>
    <camera name="top" pos="0 0 {camera_z:.6g}" fovy="45"/>
    <geom name="floor" type="plane" size="{width / 2:.6g} {height / 2:.6g} 0.1"
          contype="0" conaffinity="0" rgba="0.9 0.9 0.85 1"/>
{walls}
    <body name="agent" pos="0 0 {agent_radius}">
      <joint name="x" type="slide" axis="1 0 0" damping="{damping}"/>
      <joint name="y" type="slide" axis="0 1 0" damping="{damping}"/>
      <geom name="agent" type="sphere" size="{agent_radius}" mass="{agent_mass}"
            rgba="0.85 0.3 0.2 1"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="x" joint="x" gear="{gear}" ctrlrange="-1 1" ctrllimited="true"/>
    <motor name="y" joint="y" gear="{gear}" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""

    def __repr__(self) -> str:
        return (
            f"MazeLayout(name={self.name!r}, nrows={self.nrows}, ncols={self.ncols}, "
            f"cell_size={self.cell_size}, free_cells={len(self._free_cells)})"
        )


def _sub(a: Cell, b: Cell) -> Cell:
    return a[0] - b[0], a[1] - b[1]


def _as_xy(xy: Sequence[float] | np.ndarray) -> np.ndarray:
    point = np.asarray(xy, dtype=np.float64)
    if point.shape != (2,):
        raise ValueError(f"expected an x-y point of shape (2,), got shape {point.shape}")
    return point

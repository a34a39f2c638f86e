"""A MuJoCo planar point mass in a maze, behind the Gymnasium API."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import mujoco
import numpy as np

from envs.goals import GoalSpace
from envs.layout import MazeLayout

logger = logging.getLogger(__name__)

# MuJoCo warnings that mean the simulation can no longer be trusted.
_DIVERGENCE_WARNINGS: tuple[mujoco.mjtWarning, ...] = (
    mujoco.mjtWarning.mjWARN_BADQACC,
    mujoco.mjtWarning.mjWARN_BADQVEL,
    mujoco.mjtWarning.mjWARN_BADQPOS,
    mujoco.mjtWarning.mjWARN_BADCTRL,
)


@dataclass(frozen=True)
class PointMassConfig:
    """Physical and episode constants of :class:`PointMassEnv`.

    With the defaults the point mass reaches a terminal speed of ``gear / damping = 2 m/s`` under
    full actuation, with velocity time constant ``mass / damping = 0.2 s``.
    """

    radius: float = 0.2
    """Sphere radius, metres."""
    mass: float = 1.0
    """Sphere mass, kg."""
    gear: float = 10.0
    """Motor force at ``action = 1``, newtons."""
    damping: float = 5.0
    """Viscous damping of each slide joint, N s/m."""
    timestep: float = 0.005
    """Physics timestep, seconds."""
    frame_skip: int = 2
    """Physics steps per control step (control period ``timestep * frame_skip``)."""
    reset_position_noise: float = 0.1
    """Half-width of the uniform noise added to the layout start position on reset, metres."""
    reset_velocity_noise: float = 0.01
    """Half-width of the uniform noise added to the zero initial velocity on reset, m/s."""
    velocity_bound: float = 10.0
    """Bound of the velocity entries of the observation space, m/s."""

    @property
    def terminal_speed(self) -> float:
        """Speed under full actuation along one axis, m/s."""
        return self.gear / self.damping

    @property
    def time_constant(self) -> float:
        """Velocity time constant, seconds."""
        return self.mass / self.damping


class PointMassEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """A 2-D actuated point mass (MuJoCo sphere on x-y slide joints) in a :class:`MazeLayout`.

    Observation: float32 ``(4,)`` ``[x, y, vx, vy]`` in metres and m/s. Action: float32 ``(2,)``
    force command in ``[-1, 1]`` per axis. Reward is always 0 (wrap with
    :class:`envs.goals.GoalFollowing` for a task); the env never terminates on its own, except
    when the physics diverges: then ``info["physics_warning"]`` names the MuJoCo warning (or
    ``"non_finite_state"``) and ``terminated`` is True.

    Args:
        layout: A :class:`MazeLayout` or the name of a shipped layout (``"arena"``, ``"maze"``).
        config: Physical constants.
        render_mode: ``None`` or ``"rgb_array"`` (top-down camera, needs offscreen OpenGL).

    Raises:
        ValueError: If ``render_mode`` is not supported.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 100}

    xy_indices: tuple[int, int] = (0, 1)
    velocity_indices: tuple[int, int] = (2, 3)

    def __init__(
        self,
        layout: MazeLayout | str = "arena",
        config: PointMassConfig | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.layout = MazeLayout.load(layout) if isinstance(layout, str) else layout
        self.config = config if config is not None else PointMassConfig()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"PointMassEnv: render_mode={render_mode!r} is not supported; "
                f"use one of {self.metadata['render_modes']} or None."
            )
        self.render_mode = render_mode
        cfg = self.config
        self.model = mujoco.MjModel.from_xml_string(
            self.layout.to_mjcf(
                agent_radius=cfg.radius,
                agent_mass=cfg.mass,
                gear=cfg.gear,
                damping=cfg.damping,
                timestep=cfg.timestep,
            )
        )
        self.data = mujoco.MjData(self.model)
        self.frame_skip = cfg.frame_skip
        self.dt = cfg.timestep * cfg.frame_skip
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self.dt)}

        low, high = self.layout.bounds
        vel = np.full(2, cfg.velocity_bound)
        self.observation_space = gymnasium.spaces.Box(
            low=np.concatenate([low, -vel]).astype(np.float32),
            high=np.concatenate([high, vel]).astype(np.float32),
            dtype=np.float32,
        )
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.goal_space = GoalSpace.for_layout(self.layout)
        self._renderer: mujoco.Renderer | None = None

    # ------------------------------------------------------------------------------ Gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Resets the point mass near the layout start.

        Args:
            seed: Seeds ``self.np_random`` (the only source of randomness).
            options: ``{"start_xy": (x, y)}`` places the mass exactly at that free-space point
                (no position noise) instead of near the layout start.

        Returns:
            ``(obs (4,), info)``.

        Raises:
            ValueError: If ``options["start_xy"]`` is not a free point at least the sphere
                radius from every wall, or ``options`` has unknown keys.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"start_xy"}
        if unknown:
            raise ValueError(
                f"PointMassEnv.reset: unknown options {sorted(unknown)}; the only option is "
                "'start_xy'."
            )
        cfg = self.config
        if "start_xy" in options:
            start = np.asarray(options["start_xy"], dtype=np.float64)
            if start.shape != (2,) or not self.layout.is_free(start, margin=cfg.radius):
                raise ValueError(
                    f"PointMassEnv.reset: start_xy={options['start_xy']} must be an (x, y) point "
                    f"in free space at least the sphere radius {cfg.radius} m from every wall of "
                    f"layout {self.layout.name} (free space bounds "
                    f"{[b.tolist() for b in self.layout.bounds]})."
                )
        else:
            noise = cfg.reset_position_noise
            start = self.layout.start_xy + self.np_random.uniform(-noise, noise, size=2)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = start
        noise = cfg.reset_velocity_noise
        self.data.qvel[:] = self.np_random.uniform(-noise, noise, size=2)
        mujoco.mj_forward(self.model, self.data)
        return self._observation(), {"xy": self.data.qpos.copy()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies a force command for ``frame_skip`` physics steps.

        Args:
            action: ``(2,)`` force command, clipped to ``[-1, 1]``.

        Returns:
            ``(obs (4,), reward 0.0, terminated, truncated False, info)``; ``info["xy"]`` is the
            ``(2,)`` position, ``info["physics_warning"]`` is present only if the physics
            diverged (then ``terminated`` is True).
        """
        self.data.ctrl[:] = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        info: dict[str, Any] = {"xy": self.data.qpos.copy()}
        problem = self._physics_problem()
        if problem is not None:
            logger.warning(
                "PointMassEnv: physics diverged (%s) at t=%.3f s; terminating the episode.",
                problem,
                self.data.time,
            )
            info["physics_warning"] = problem
        return self._observation(), 0.0, problem is not None, False, info

    def render(self) -> np.ndarray | None:
        """Renders the top-down camera.

        Returns:
            ``(H, W, 3)`` uint8 image if ``render_mode == "rgb_array"``, else None.
        """
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, height=480, width=480)
        self._renderer.update_scene(self.data, camera="top")
        return self._renderer.render()

    def close(self) -> None:
        """Releases the renderer, if one was created."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------------------ helpers

    def _observation(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float32)

    def _physics_problem(self) -> str | None:
        for warning in _DIVERGENCE_WARNINGS:
            if self.data.warning[warning].number > 0:
                # Clear the counter so that a later divergence is reported again.
                self.data.warning[warning].number = 0
                return warning.name
        if not (np.isfinite(self.data.qpos).all() and np.isfinite(self.data.qvel).all()):
            return "non_finite_state"
        return None

"""A planar two-link MuJoCo arm whose tasks are reaching one of sixteen targets.

``hrl/ArmReach-v0``: a horizontal arm (shoulder and elbow hinges about z, torque motors) with its
base at the origin. The observation holds the fingertip x-y first, so goal following works on it
(``xy_indices = (0, 1)``, goals in an annulus around the base). The task (which of
:data:`TARGETS` to reach) is *not* in the observation: it is chosen at reset
(``options={"task": k}``, else drawn from the env's generator) and read from ``env.task`` and
``info["task"]``, as the skill-embedding setting of Hausman et al. 2018 gives the task id
separately from the state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import mujoco
import numpy as np

from envs.goals import GoalSpace

logger = logging.getLogger(__name__)

_INNER, _OUTER = 0.55, 0.95
_ANGLES = np.arange(8) * np.pi / 4
_FIRST_RADII = np.where(np.arange(8) % 2 == 0, _INNER, _OUTER)
_SECOND_RADII = np.where(np.arange(8) % 2 == 0, _OUTER, _INNER)
TARGETS = np.concatenate(
    [
        np.stack([_FIRST_RADII * np.cos(_ANGLES), _FIRST_RADII * np.sin(_ANGLES)], -1),
        np.stack([_SECOND_RADII * np.cos(_ANGLES), _SECOND_RADII * np.sin(_ANGLES)], -1),
    ]
)
"""``(16, 2)`` task targets, metres, 45 degrees apart on an inner (0.55 m) and an outer
(0.95 m) ring. Tasks 0-7 alternate between the rings (0 inner at 0 degrees, 1 outer at 45,
...); tasks 8-15 are the other ring at the same angles, so that ``--tasks 8`` trains the
alternating set and ``--tasks 16`` covers both rings at every angle."""
TARGETS.flags.writeable = False

GOAL_ANNULUS = (0.5, 1.0)
"""Radii (min, max) around the base of the goals goal following samples, metres."""
ARM_SUCCESS_RADIUS = 0.1
"""Fingertip distance counted as reaching a goal, metres."""


@dataclass(frozen=True)
class ArmConfig:
    """Physical and episode constants of :class:`ArmReachEnv`."""

    upper_length: float = 0.6
    """Shoulder-to-elbow length, metres."""
    fore_length: float = 0.6
    """Elbow-to-fingertip length, metres."""
    link_mass: float = 1.0
    """Mass of each link, kg."""
    gear: float = 8.0
    """Joint torque at ``action = 1``, N m."""
    damping: float = 2.0
    """Viscous damping of each joint, N m s/rad."""
    elbow_limit: float = 2.6
    """The elbow bends at most this far either way, rad (the links cannot fold onto each other)."""
    timestep: float = 0.01
    """Physics timestep, seconds."""
    frame_skip: int = 2
    """Physics steps per control step (control period 0.02 s)."""
    reset_angle_noise: float = 0.1
    """Half-width of the uniform noise on the home joint angles at reset, rad."""
    velocity_bound: float = 50.0
    """Bound of the joint-velocity entries of the observation space, rad/s."""


HOME = np.array([0.0, np.pi / 2])
"""Home joint angles (shoulder, elbow), rad: upper arm along +x, forearm bent to +y (the
fingertip at (0.6, 0.6), 0.85 m from the base)."""


def _mjcf(cfg: ArmConfig) -> str:
    upper, fore = cfg.upper_length, cfg.fore_length
    return f"""
<mujoco model="planar_arm">
  <compiler angle="radian"/>
  <option timestep="{cfg.timestep}" gravity="0 0 -9.81" integrator="implicitfast"/>
  <default>
    <joint type="hinge" axis="0 0 1" damping="{cfg.damping}" armature="0.01"/>
    <geom contype="0" conaffinity="0" rgba="0.7 0.5 0.3 1"/>
  </default>
  <worldbody>
    <camera name="top" pos="0 0 3.2" xyaxes="1 0 0 0 1 0"/>
    <light pos="0 0 3"/>
    <geom name="floor" type="plane" size="1.5 1.5 0.05" pos="0 0 -0.05" rgba="0.9 0.9 0.9 1"/>
    <body name="upper" pos="0 0 0">
      <joint name="shoulder"/>
      <geom type="capsule" fromto="0 0 0 {upper} 0 0" size="0.04" mass="{cfg.link_mass}"/>
      <body name="fore" pos="{upper} 0 0">
        <joint name="elbow" limited="true" range="{-cfg.elbow_limit} {cfg.elbow_limit}"/>
        <geom type="capsule" fromto="0 0 0 {fore} 0 0" size="0.035" mass="{cfg.link_mass}"/>
        <site name="fingertip" pos="{fore} 0 0" size="0.03" rgba="0.2 0.6 0.9 1"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor joint="shoulder" gear="{cfg.gear}" ctrlrange="-1 1" ctrllimited="true"/>
    <motor joint="elbow" gear="{cfg.gear}" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


class ArmReachEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """A planar two-link arm reaching one of sixteen targets.

    Observation: float32 ``(8,)`` ``[tip_x, tip_y, cos q1, sin q1, cos q2, sin q2, dq1, dq2]``
    (metres, unitless, rad/s). Action: float32 ``(2,)`` joint torques in ``[-1, 1]`` (times
    ``gear`` N m). Reward: ``-||tip - TARGETS[task]||`` (metres). The env never terminates on
    its own, except when the physics diverges (``info["physics_warning"]``).

    Args:
        config: Physical constants.
        render_mode: ``None`` or ``"rgb_array"``.

    Raises:
        ValueError: If ``render_mode`` is not supported.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 50}

    xy_indices: tuple[int, int] = (0, 1)
    targets: np.ndarray = TARGETS
    num_tasks: int = len(TARGETS)

    def __init__(self, config: ArmConfig | None = None, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"ArmReachEnv: render_mode={render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None."
            )
        self.config = config if config is not None else ArmConfig()
        self.render_mode = render_mode
        self.model = mujoco.MjModel.from_xml_string(_mjcf(self.config))
        self.data = mujoco.MjData(self.model)
        self.frame_skip = self.config.frame_skip
        self.dt = self.config.timestep * self.config.frame_skip
        self._tip = self.model.site("fingertip").id
        reach = self.config.upper_length + self.config.fore_length
        vel = self.config.velocity_bound
        self.observation_space = gymnasium.spaces.Box(
            low=np.array([-reach, -reach, -1, -1, -1, -1, -vel, -vel], np.float32),
            high=np.array([reach, reach, 1, 1, 1, 1, vel, vel], np.float32),
            dtype=np.float32,
        )
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.goal_space = GoalSpace.box(
            (-reach, -reach), (reach, reach), start_distance=GOAL_ANNULUS
        )
        self.task = 0
        self._renderer: mujoco.Renderer | None = None

    @property
    def target(self) -> np.ndarray:
        """``(2,)`` the current task's target, metres."""
        return self.targets[self.task].copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Puts the arm near its home pose and picks the task.

        Args:
            seed: Seeds ``self.np_random`` (the only source of randomness).
            options: ``{"task": k}`` (0..15) fixes the task (else drawn uniformly);
                ``{"joint_angles": (q1, q2)}`` starts exactly there (elbow within its limit)
                instead of near home.

        Returns:
            ``(obs (8,), info)`` with ``task``, ``target`` and ``xy``.

        Raises:
            ValueError: On unknown options, a task out of range, or bad joint angles.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"task", "joint_angles"}
        if unknown:
            raise ValueError(
                f"ArmReachEnv.reset: unknown options {sorted(unknown)}; the options are 'task' "
                "and 'joint_angles'."
            )
        if "task" in options:
            task = options["task"]
            if not isinstance(task, int | np.integer) or not 0 <= task < self.num_tasks:
                raise ValueError(
                    f"ArmReachEnv.reset: task={task!r} must be an integer in [0, {self.num_tasks})"
                )
            self.task = int(task)
        else:
            self.task = int(self.np_random.integers(self.num_tasks))
        if "joint_angles" in options:
            angles = np.asarray(options["joint_angles"], dtype=np.float64)
            limit = self.config.elbow_limit
            if angles.shape != (2,) or not np.isfinite(angles).all() or abs(angles[1]) > limit:
                raise ValueError(
                    f"ArmReachEnv.reset: joint_angles={options['joint_angles']} must be finite "
                    f"(shoulder, elbow) radians with |elbow| <= {limit}"
                )
        else:
            noise = self.config.reset_angle_noise
            angles = HOME + self.np_random.uniform(-noise, noise, size=2)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = angles
        mujoco.mj_forward(self.model, self.data)
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies joint torques for ``frame_skip`` physics steps.

        Args:
            action: ``(2,)`` torques, clipped to ``[-1, 1]``.

        Returns:
            ``(obs (8,), -distance to the task target, terminated, False, info)``.
        """
        self.data.ctrl[:] = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        obs = self._observation()
        info = self._info()
        problem = self._physics_problem()
        if problem is not None:
            logger.warning("ArmReachEnv: physics diverged (%s); terminating the episode.", problem)
            info["physics_warning"] = problem
            obs = np.clip(
                np.nan_to_num(obs), self.observation_space.low, self.observation_space.high
            )
        return obs, -float(info["target_distance"]), problem is not None, False, info

    def render(self) -> np.ndarray | None:
        """Renders the top-down camera: ``(H, W, 3)`` uint8 in ``rgb_array`` mode, else None."""
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

    def fingertip(self) -> np.ndarray:
        """``(2,)`` the fingertip x-y, metres."""
        return self.data.site_xpos[self._tip, :2].copy()

    def _observation(self) -> np.ndarray:
        q, dq = self.data.qpos, self.data.qvel
        return np.concatenate([self.data.site_xpos[self._tip, :2], np.cos(q), np.sin(q), dq])[
            [0, 1, 2, 4, 3, 5, 6, 7]
        ].astype(np.float32)

    def _info(self) -> dict[str, Any]:
        tip = self.fingertip()
        return {
            "xy": tip,
            "task": self.task,
            "target": self.target,
            "target_distance": float(np.linalg.norm(tip - self.targets[self.task])),
        }

    def _physics_problem(self) -> str | None:
        for warning in (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQVEL):
            if self.data.warning[warning].number > 0:
                self.data.warning[warning].number = 0
                return warning.name
        if not (np.isfinite(self.data.qpos).all() and np.isfinite(self.data.qvel).all()):
            return "non_finite_state"
        return None

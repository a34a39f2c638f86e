"""A scripted goal-reaching skill for the point-mass environments.

The command is an x-y goal. The controller is a saturated PD law on the position error,
``a = clip(kp * (g - p) - kd * v, -1, 1)``, and the skill ships an analytic ``dynamics`` component
(where the point mass ends up after holding a goal for ``hold_steps``), so that planners can be
tested before any learned skill exists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
from gymnasium.spaces import Box

from hrl_runtime.skill import PackageContents, Skill, SkillDynamics


@dataclass(frozen=True)
class ReachConfig:
    """Gains and geometry of :class:`ScriptedReachSkill`."""

    kp: float = 1.5
    """Proportional gain, actuator units per metre of position error."""
    kd: float = 0.5
    """Damping gain, actuator units per m/s of velocity."""
    step_length: float = 0.16
    """Metres the point mass covers while holding a far goal for ``hold_steps`` (dynamics)."""
    hold_steps: int = 10
    """Control steps each goal command is held before replanning."""
    position_indices: tuple[int, int] = (0, 1)
    """Observation entries holding x and y (metres)."""
    velocity_indices: tuple[int, int] = (2, 3)
    """Observation entries holding the x and y velocity (m/s)."""
    goal_extent: float = 10.0
    """Commands are goals in [-goal_extent, goal_extent]^2 metres."""


class ReachDynamics(SkillDynamics):
    """What holding a goal does to x-y: a step of at most ``step_length`` toward it.

    ``s' = s + (g - s) * min(1, step_length / ||g - s||)``; exact for a point mass that moves at
    a constant speed straight to its goal and stops there.
    """

    def __init__(self, step_length: float, state_indices: tuple[int, int]):
        self.step_length = np.float32(step_length)
        self.state_indices = tuple(state_indices)

    def predict(self, states: np.ndarray, commands: np.ndarray) -> np.ndarray:
        """``states: (B, 2)`` x-y in metres, ``commands: (B, 2)`` goals -> ``(B, 2)``."""
        delta = np.asarray(commands, np.float32) - np.asarray(states, np.float32)
        distance = np.linalg.norm(delta, axis=-1, keepdims=True)
        scale = np.minimum(1.0, self.step_length / np.maximum(distance, 1e-9))
        return states + delta * scale


class ScriptedReachSkill(Skill):
    """PD goal reaching for a 2-D point mass; command = x-y goal in metres."""

    kind: ClassVar[str] = "scripted_reach"
    #: The command is an x-y goal: a goal sequence can drive this skill directly.
    command_is_goal: ClassVar[bool] = True

    def __init__(self, config: ReachConfig, observation_space: Box, action_space: Box):
        extent = np.float32(config.goal_extent)
        command_space = Box(-extent, extent, shape=(2,), dtype=np.float32)
        super().__init__(
            observation_space,
            command_space,
            action_space,
            config.hold_steps,
            dynamics=ReachDynamics(config.step_length, config.position_indices),
        )
        self.config = config
        self._kp = np.float32(config.kp)
        self._kd = np.float32(config.kd)
        self._pos = list(config.position_indices)
        self._vel = list(config.velocity_indices)
        self._low = np.asarray(action_space.low, np.float32)
        self._high = np.asarray(action_space.high, np.float32)

    def act(self, obs: np.ndarray, command: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        error = np.asarray(command, np.float32) - obs[self._pos]
        return np.clip(self._kp * error - self._kd * obs[self._vel], self._low, self._high)

    def act_batch(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        error = np.asarray(commands, np.float32) - obs[:, self._pos]
        return np.clip(self._kp * error - self._kd * obs[:, self._vel], self._low, self._high)

    # --- packaging -------------------------------------------------------------------------
    def package_config(self) -> dict[str, Any]:
        config = asdict(self.config)
        # Gains and step length live in the weight files; the rest is structure.
        for key in ("kp", "kd", "step_length", "hold_steps"):
            config.pop(key)
        return config

    def package_tensors(self) -> dict[str, dict[str, np.ndarray]]:
        return {
            "policy": {"kp": np.array([self._kp]), "kd": np.array([self._kd])},
            "dynamics": {"step_length": np.array([self.dynamics.step_length])},
        }

    def package_components(self) -> dict[str, str | None]:
        return {"policy": "policy", "dynamics": "dynamics", "prior": None, "value": None}

    @classmethod
    def check_package(cls, package: PackageContents) -> None:
        """Refuses a config whose indices miss the observation or whose extent is not finite.

        Raises:
            PackageError: naming the ``config`` key or tensor at fault.
        """
        obs_dim = package.vector_size("observation")
        if package.vector_size("action") != 2 or package.vector_size("command") != 2:
            raise package.config_fields().error(
                "<spaces>", "a scripted reach skill commands and acts in x-y (2 entries each)"
            )
        config = package.config_fields()
        config.keys(("position_indices", "velocity_indices", "goal_extent"))
        config.integers("position_indices", 0, obs_dim - 1, length=2)
        config.integers("velocity_indices", 0, obs_dim - 1, length=2)
        config.number("goal_extent", 0.0, 1e6, above=True)
        package.expect_tensors("policy", {"kp": (1,), "kd": (1,)})
        package.expect_tensors("dynamics", {"step_length": (1,)})

    @classmethod
    def from_package(cls, package: PackageContents) -> ScriptedReachSkill:
        config = dict(package.config)
        config["position_indices"] = tuple(config["position_indices"])
        config["velocity_indices"] = tuple(config["velocity_indices"])
        reach = ReachConfig(
            kp=float(package.tensors["policy"]["kp"][0]),
            kd=float(package.tensors["policy"]["kd"][0]),
            step_length=float(package.tensors["dynamics"]["step_length"][0]),
            hold_steps=int(package.manifest["hold_steps"]),
            **config,
        )
        return cls(reach, package.spaces["observation"], package.spaces["action"])

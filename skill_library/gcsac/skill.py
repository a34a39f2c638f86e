"""The goal-conditioned SAC policy as a registry package: a goal-commanded skill.

The command is the x-y goal in metres, so the goal sequence (``--planner sequence``) drives it
directly; the policy reads the body state and the goal relative to the torso, ``g - xy``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.spaces import Box

from hrl_runtime.errors import PackageError
from hrl_runtime.skill import PackageContents, Skill
from skill_library.package_checks import MAX_LAYERS, MAX_WIDTH, module_shapes
from skill_library.sac.networks import TanhGaussianPolicy

MAX_GOAL_EXTENT = 1e6
"""Largest goal coordinate, metres, a package's command space may declare."""


@dataclass(frozen=True)
class GCSACSkillConfig:
    """How a goal-conditioned SAC policy reads observations and goals."""

    policy_obs_indices: tuple[int, ...]
    """Observation entries the policy sees (the body state, without x-y)."""
    xy_indices: tuple[int, int]
    """Observation entries of the torso x-y that goals are relative to."""
    policy_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the policy."""
    goal_extent: float = 10.0
    """Commands are goals in [-goal_extent, goal_extent]^2 metres."""


def policy_input(
    obs: np.ndarray, goals: np.ndarray, obs_indices: list[int], xy_indices: list[int]
) -> np.ndarray:
    """The policy's input ``[obs[obs_indices], g - obs[xy]]`` for ``obs: (B, do)`` and
    ``goals: (B, 2)`` -> ``(B, len(obs_indices) + 2)`` float32."""
    obs = np.asarray(obs, np.float32)
    relative = np.asarray(goals, np.float32) - obs[:, xy_indices]
    return np.concatenate([obs[:, obs_indices], relative], -1)


class GCSACSkill(Skill):
    """``a = tanh(mu(s, g - xy))``, the mean action of a goal-conditioned SAC policy.

    ``act`` runs the policy in numpy (no torch on the control path); the command is a goal, so
    ``hold_steps`` is one control step (the policy acts at every step).
    """

    kind: ClassVar[str] = "gcsac"
    #: The command is an x-y goal: a goal sequence can drive this skill directly.
    command_is_goal: ClassVar[bool] = True

    def __init__(
        self,
        config: GCSACSkillConfig,
        policy: TanhGaussianPolicy,
        observation_space: Box,
        action_space: Box,
    ):
        extent = np.float32(config.goal_extent)
        command_space = Box(-extent, extent, shape=(2,), dtype=np.float32)
        super().__init__(observation_space, command_space, action_space, 1)
        self.config = config
        self.policy = policy.eval()
        self._indices = list(config.policy_obs_indices)
        self._xy = list(config.xy_indices)
        linears = [m for m in policy.trunk if isinstance(m, torch.nn.Linear)]
        self._layers = [
            (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears
        ]
        self._mean = (
            policy.mean.weight.detach().numpy().T.copy(),
            policy.mean.bias.detach().numpy().copy(),
        )
        self._low = np.asarray(action_space.low, np.float32)
        self._high = np.asarray(action_space.high, np.float32)

    def policy_mode(self, obs: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """``tanh(mu(x))`` for ``obs: (B, do)`` and ``goals: (B, 2)`` -> ``(B, da)``."""
        x = policy_input(obs, goals, self._indices, self._xy)
        for weight, bias in self._layers:
            x = np.maximum(x @ weight + bias, 0.0)
        return np.tanh(x @ self._mean[0] + self._mean[1])

    def act(self, obs: np.ndarray, command: np.ndarray) -> np.ndarray:
        return self.act_batch(np.asarray(obs)[None], np.asarray(command)[None])[0]

    def act_batch(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        return np.clip(self.policy_mode(obs, commands), self._low, self._high)

    # --- packaging -------------------------------------------------------------------------
    def package_config(self) -> dict[str, Any]:
        return {"skill": asdict(self.config)}

    def package_tensors(self) -> dict[str, dict[str, np.ndarray]]:
        return {"policy": {k: v.detach().numpy() for k, v in self.policy.state_dict().items()}}

    def package_components(self) -> dict[str, str | None]:
        return {"policy": "policy", "dynamics": None, "prior": None, "value": None}

    @classmethod
    def check_package(cls, package: PackageContents) -> None:
        """Refuses a config whose indices, sizes or extent do not fit the spaces or tensors.

        Raises:
            PackageError: naming the ``config`` key or tensor at fault.
        """
        obs_dim, action_dim = package.vector_size("observation"), package.vector_size("action")
        config = package.config_fields()
        config.keys(("skill",))
        skill = config.section("skill")
        skill.keys(("policy_obs_indices", "xy_indices"), ("policy_hidden", "goal_extent"))
        if package.vector_size("command") != 2:
            raise skill.error("xy_indices", "a gcsac skill's command is an x-y goal (2 entries)")
        indices = skill.integers("policy_obs_indices", 0, obs_dim - 1, max_length=obs_dim)
        xy = skill.integers("xy_indices", 0, obs_dim - 1, length=2)
        if xy[0] == xy[1]:
            raise skill.error("xy_indices", "must name two different entries")
        if set(xy) & set(indices):
            raise skill.error("policy_obs_indices", "may not include the xy_indices")
        if package.manifest["hold_steps"] != 1:
            raise PackageError(
                package.manifest_path,
                "a gcsac skill acts at every step: hold_steps must be 1",
                field="hold_steps",
                fix="re-export the package",
            )
        skill.number("goal_extent", 0.0, MAX_GOAL_EXTENT, 10.0, above=True)
        hidden = skill.integers("policy_hidden", 1, MAX_WIDTH, (128, 128), max_length=MAX_LAYERS)
        package.expect_tensors(
            "policy",
            module_shapes(lambda: TanhGaussianPolicy(len(indices) + 2, action_dim, hidden)),
        )

    @classmethod
    def from_package(cls, package: PackageContents) -> GCSACSkill:
        raw = dict(package.config["skill"])
        for key in ("policy_obs_indices", "xy_indices"):
            raw[key] = tuple(raw[key])
        if "policy_hidden" in raw:
            raw["policy_hidden"] = tuple(raw["policy_hidden"])
        config = GCSACSkillConfig(**raw)
        action_space = package.spaces["action"]
        policy = TanhGaussianPolicy(
            len(config.policy_obs_indices) + 2,
            int(np.prod(action_space.shape)),
            config.policy_hidden,
        )
        policy.load_state_dict(
            {k: torch.from_numpy(np.array(v)) for k, v in package.tensors["policy"].items()}
        )
        return cls(config, policy, package.spaces["observation"], action_space)

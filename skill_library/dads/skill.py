"""DADS skills as a registry package: the skill-conditioned policy plus its skill dynamics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.spaces import Box

from hrl_runtime.skill import PackageContents, Skill
from skill_library.dynamics import LearnedDynamics
from skill_library.hold import ActionHold
from skill_library.package_checks import (
    MAX_LAYERS,
    MAX_WIDTH,
    check_dynamics_config,
    module_shapes,
)
from skill_library.sac.networks import TanhGaussianPolicy


@dataclass(frozen=True)
class DADSSkillConfig:
    """How a DADS policy reads observations and acts."""

    latent_dim: int
    """dz: size of the skill code z in [-1, 1]^dz."""
    policy_obs_indices: tuple[int, ...]
    """Observation entries the policy sees (the x-y prior may hide position)."""
    action_repeat: int
    """Control steps each policy action is held (the policy's own rate is the loop's / this)."""
    policy_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of the policy."""
    dynamics_horizon: int = 1
    """Policy steps a command is held per planning step (what the skill dynamics predicts
    over); ``hold_steps = action_repeat * dynamics_horizon``."""


class DADSSkill(Skill):
    """A DADS skill: ``a = tanh(mu(s, z))`` held for ``action_repeat`` control steps.

    The command is the latent skill code ``z``; ``dynamics`` predicts the planning state after
    ``dynamics_horizon`` policy steps (``hold_steps = action_repeat * dynamics_horizon`` control
    steps), which is what latent MPPI plans with. ``act`` runs the policy in numpy (no torch
    on the control path).
    """

    kind: ClassVar[str] = "dads"

    def __init__(
        self,
        config: DADSSkillConfig,
        policy: TanhGaussianPolicy,
        dynamics: LearnedDynamics,
        observation_space: Box,
        action_space: Box,
    ):
        command_space = Box(-1.0, 1.0, shape=(config.latent_dim,), dtype=np.float32)
        super().__init__(
            observation_space,
            command_space,
            action_space,
            config.action_repeat * config.dynamics_horizon,
            dynamics=dynamics,
        )
        self.config = config
        self.policy = policy.eval()
        self._indices = list(config.policy_obs_indices)
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
        self._hold = ActionHold(action_space.shape, config.latent_dim, config.action_repeat)

    def reset(self) -> None:
        self._hold.reset()

    def policy_mode(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        """``tanh(mu(x))`` for ``obs: (B, do)`` and ``commands: (B, dz)`` -> ``(B, da)``."""
        x = np.concatenate([np.asarray(obs, np.float32)[:, self._indices], commands], -1)
        for weight, bias in self._layers:
            x = np.maximum(x @ weight + bias, 0.0)
        return np.tanh(x @ self._mean[0] + self._mean[1])

    def act(self, obs: np.ndarray, command: np.ndarray) -> np.ndarray:
        command = np.asarray(command, np.float32)
        if self._hold.due(command):
            action = self.policy_mode(np.asarray(obs)[None], command[None])[0]
            self._hold.hold(np.clip(action, self._low, self._high))
        return self._hold.current()

    def act_batch(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        actions = self.policy_mode(obs, np.asarray(commands, np.float32))
        return np.clip(actions, self._low, self._high)

    # --- packaging -------------------------------------------------------------------------
    def package_config(self) -> dict[str, Any]:
        return {"skill": asdict(self.config), "dynamics": self.dynamics.config_json()}

    def package_tensors(self) -> dict[str, dict[str, np.ndarray]]:
        policy = {k: v.detach().numpy() for k, v in self.policy.state_dict().items()}
        return {"policy": policy, "dynamics": self.dynamics.tensors()}

    def package_components(self) -> dict[str, str | None]:
        return {"policy": "policy", "dynamics": "dynamics", "prior": None, "value": None}

    @classmethod
    def check_package(cls, package: PackageContents) -> None:
        """Refuses a config whose sizes do not fit the spaces or the listed tensor shapes.

        Raises:
            PackageError: naming the ``config`` key or tensor at fault.
        """
        obs_dim, action_dim = package.vector_size("observation"), package.vector_size("action")
        config = package.config_fields()
        config.keys(("skill", "dynamics"))
        skill = config.section("skill")
        skill.keys(
            ("latent_dim", "policy_obs_indices", "action_repeat"),
            ("policy_hidden", "dynamics_horizon"),
        )
        latent_dim = skill.integer("latent_dim", 1, 1024)
        if package.vector_size("command") != latent_dim:
            raise skill.error("latent_dim", "differs from the size of spaces.command")
        indices = skill.integers("policy_obs_indices", 0, obs_dim - 1, max_length=obs_dim)
        repeat = skill.integer("action_repeat", 1, 100_000)
        horizon = skill.integer("dynamics_horizon", 1, 100_000, 1)
        if repeat * horizon != package.manifest["hold_steps"]:
            raise skill.error("action_repeat", "times dynamics_horizon differs from hold_steps")
        hidden = skill.integers("policy_hidden", 1, MAX_WIDTH, (256, 256), max_length=MAX_LAYERS)
        package.expect_tensors(
            "policy",
            module_shapes(
                lambda: TanhGaussianPolicy(len(indices) + latent_dim, action_dim, hidden)
            ),
        )
        expected = check_dynamics_config(config.section("dynamics"), obs_dim, latent_dim)
        package.expect_tensors("dynamics", expected)

    @classmethod
    def from_package(cls, package: PackageContents) -> DADSSkill:
        raw = dict(package.config["skill"])
        raw["policy_obs_indices"] = tuple(raw["policy_obs_indices"])
        raw["policy_hidden"] = tuple(raw["policy_hidden"])
        config = DADSSkillConfig(**raw)
        action_space = package.spaces["action"]
        policy = TanhGaussianPolicy(
            len(config.policy_obs_indices) + config.latent_dim,
            int(np.prod(action_space.shape)),
            config.policy_hidden,
        )
        policy.load_state_dict(
            {k: torch.from_numpy(np.array(v)) for k, v in package.tensors["policy"].items()}
        )
        dynamics = LearnedDynamics.from_tensors(
            package.config["dynamics"], package.tensors["dynamics"]
        )
        return cls(config, policy, dynamics, package.spaces["observation"], action_space)

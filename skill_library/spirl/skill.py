"""SPiRL skills as a registry package: the skill decoder, with the learned prior as component."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.spaces import Box

from hrl_runtime.skill import PackageContents, Skill, SkillPrior
from skill_library.hold import ActionHold
from skill_library.package_checks import MAX_LAYERS, MAX_WIDTH, module_shapes
from skill_library.spirl.networks import SkillModel, SkillModelConfig


class LearnedSkillPrior(SkillPrior):
    """``p(z | s)``, a diagonal Gaussian from the skill model's prior network."""

    def __init__(self, model: SkillModel):
        self.model = model

    @torch.no_grad()
    def distribution(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std ``(B, dz)`` for ``obs (B, do)``."""
        mean, log_std = self.model.prior_distribution(torch.as_tensor(obs, dtype=torch.float32))
        return mean.numpy(), log_std.exp().numpy()

    def sample(self, obs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        mean, std = self.distribution(np.asarray(obs, np.float32)[None])
        return (mean + std * rng.standard_normal((n, mean.shape[1]))).astype(np.float32)

    def log_prob(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        mean, std = self.distribution(np.asarray(obs, np.float32)[None])
        z = (np.asarray(commands) - mean) / std
        return (-0.5 * z**2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(-1)


class SPiRLSkill(Skill):
    """A SPiRL skill: command = skill embedding z, decoded into ``horizon`` policy actions, each
    held for ``action_repeat`` control steps (``hold_steps = horizon * action_repeat``).

    Args:
        model: the trained skill model (decoder and prior are used).
        observation_space, action_space: of the environment the data came from.
        action_repeat: control steps per policy action.
        command_bound: commands are z in [-bound, bound]^dz.
    """

    kind: ClassVar[str] = "spirl"

    def __init__(
        self,
        model: SkillModel,
        observation_space: Box,
        action_space: Box,
        action_repeat: int,
        command_bound: float = 2.0,
    ):
        dz, H = model.config.latent_dim, model.config.horizon
        command_space = Box(-command_bound, command_bound, shape=(dz,), dtype=np.float32)
        super().__init__(
            observation_space,
            command_space,
            action_space,
            H * action_repeat,
            prior=LearnedSkillPrior(model.eval()),
        )
        self.model = model
        self.action_repeat = int(action_repeat)
        self.command_bound = float(command_bound)
        self._low = np.asarray(action_space.low, np.float32)
        self._high = np.asarray(action_space.high, np.float32)
        self._hold = ActionHold(action_space.shape, dz, action_repeat)

    def reset(self) -> None:
        self._hold.reset()

    @torch.no_grad()
    def _decode(self, obs: np.ndarray, command: np.ndarray, step: int) -> np.ndarray:
        # Copies: the loop hands over read-only views (published plans), which torch cannot wrap.
        action = self.model.act(
            torch.tensor(obs, dtype=torch.float32), torch.tensor(command, dtype=torch.float32), step
        )
        return np.clip(action.numpy(), self._low, self._high)

    def act(self, obs: np.ndarray, command: np.ndarray) -> np.ndarray:
        command = np.asarray(command, np.float32)
        if self._hold.due(command):
            step = self._hold.policy_step % self.model.config.horizon
            self._hold.hold(self._decode(np.asarray(obs)[None], command[None], step)[0])
        return self._hold.current()

    def act_batch(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        return self._decode(np.asarray(obs), np.asarray(commands, np.float32), 0)

    # --- packaging -------------------------------------------------------------------------
    def package_config(self) -> dict[str, Any]:
        return {
            "model": asdict(self.model.config),
            "action_repeat": self.action_repeat,
            "command_bound": self.command_bound,
        }

    def package_tensors(self) -> dict[str, dict[str, np.ndarray]]:
        state = {k: v.detach().numpy() for k, v in self.model.state_dict().items()}
        return {
            "policy": {k: v for k, v in state.items() if not k.startswith("prior.")},
            "prior": {k: v for k, v in state.items() if k.startswith("prior.")},
        }

    def package_components(self) -> dict[str, str | None]:
        return {"policy": "policy", "dynamics": None, "prior": "prior", "value": None}

    @classmethod
    def check_package(cls, package: PackageContents) -> None:
        """Refuses a config whose sizes do not fit the spaces or the listed tensor shapes.

        Raises:
            PackageError: naming the ``config`` key or tensor at fault.
        """
        obs_dim, action_dim = package.vector_size("observation"), package.vector_size("action")
        config = package.config_fields()
        config.keys(("model", "action_repeat", "command_bound"))
        model = config.section("model")
        model.keys(("horizon", "latent_dim", "hidden"), ("closed_loop",))
        shape = SkillModelConfig(
            horizon=model.integer("horizon", 1, 10_000),
            latent_dim=model.integer("latent_dim", 1, 1024),
            hidden=model.integers("hidden", 1, MAX_WIDTH, max_length=MAX_LAYERS),
            closed_loop=model.boolean("closed_loop", default=True),
        )
        if package.vector_size("command") != shape.latent_dim:
            raise model.error("latent_dim", "differs from the size of spaces.command")
        repeat = config.integer("action_repeat", 1, 100_000)
        if shape.horizon * repeat != package.manifest["hold_steps"]:
            raise config.error("action_repeat", "times model.horizon differs from hold_steps")
        config.number("command_bound", 0.0, 1e6, above=True)
        tensors = module_shapes(lambda: SkillModel(obs_dim, action_dim, shape))
        prior = {k: v for k, v in tensors.items() if k.startswith("prior.")}
        package.expect_tensors("policy", {k: v for k, v in tensors.items() if k not in prior})
        package.expect_tensors("prior", prior)

    @classmethod
    def from_package(cls, package: PackageContents) -> SPiRLSkill:
        raw = dict(package.config["model"])
        raw["hidden"] = tuple(raw["hidden"])
        observation_space, action_space = package.spaces["observation"], package.spaces["action"]
        model = SkillModel(
            observation_space.shape[0], action_space.shape[0], SkillModelConfig(**raw)
        )
        tensors = {**package.tensors["policy"], **package.tensors["prior"]}
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})
        return cls(
            model,
            observation_space,
            action_space,
            package.config["action_repeat"],
            package.config["command_bound"],
        )

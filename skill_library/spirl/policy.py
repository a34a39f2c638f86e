"""The packaged SPiRL high-level policy: a :class:`~planners.spirl.SkillSpacePolicy` whose actor is
the trained SAC policy network, stored as a registry package of role ``policy`` that names the
skill it drives."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.spaces import Box

from hrl_runtime.errors import IncompatibleError
from hrl_runtime.skill import PackageContents, Packaged, Skill
from planners.spirl import SkillSpacePolicy
from skill_library.package_checks import MAX_LAYERS, MAX_WIDTH, module_shapes
from skill_library.sac import TanhGaussianPolicy


class SPiRLPolicy(SkillSpacePolicy, Packaged):
    """A trained high-level policy over a skill's commands.

    Args:
        network: ``(mean, log_std)`` of the pre-squash Gaussian for ``obs (B, do)``.
        skill_ref: ``name@version`` of the skill it drives.
        observation_space: what it reads.
        command_space: the skill's command space (z in [-bound, bound]^dz).
        hold_steps: control steps per skill (a new z after each).
        deterministic: use the mode ``bound * tanh(mean)`` rather than sampling.
        seed: seed of the sampling noise.
    """

    kind: ClassVar[str] = "spirl_policy"
    role: ClassVar[str] = "policy"

    def __init__(
        self,
        network: TanhGaussianPolicy,
        skill_ref: str,
        observation_space: Box,
        command_space: Box,
        hold_steps: int,
        deterministic: bool = True,
        seed: int = 0,
    ):
        super().__init__(network, observation_space, command_space, hold_steps, deterministic, seed)
        self.skill_ref = skill_ref

    # --- packaging -------------------------------------------------------------------------
    def package_spaces(self) -> dict[str, Box]:
        return {"observation": self.observation_space, "command": self.command_space}

    def package_config(self) -> dict[str, Any]:
        hidden = [m.out_features for m in self.network.trunk if isinstance(m, torch.nn.Linear)]
        return {"skill": self.skill_ref, "hold_steps": self.hold_steps, "hidden": hidden}

    def package_tensors(self) -> dict[str, dict[str, np.ndarray]]:
        return {"policy": {k: v.detach().numpy() for k, v in self.network.state_dict().items()}}

    def package_components(self) -> dict[str, str | None]:
        return {"policy": "policy"}

    @classmethod
    def check_package(cls, package: PackageContents) -> None:
        """Refuses a config whose sizes do not fit the spaces or the listed tensor shapes.

        Raises:
            PackageError: naming the ``config`` key or tensor at fault.
        """
        obs_dim, command_dim = package.vector_size("observation"), package.vector_size("command")
        config = package.config_fields()
        config.keys(("skill", "hold_steps", "hidden"))
        skill = config.text("skill", max_length=200)
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*(@\d+(\.\d+){0,3})?", skill):
            raise config.error("skill", f"must be NAME or NAME@VERSION, got {skill!r}")
        config.integer("hold_steps", 1, 1_000_000)
        hidden = config.integers("hidden", 1, MAX_WIDTH, max_length=MAX_LAYERS)
        package.expect_tensors(
            "policy", module_shapes(lambda: TanhGaussianPolicy(obs_dim, command_dim, hidden))
        )

    @classmethod
    def from_package(cls, package: PackageContents) -> SPiRLPolicy:
        config = package.config
        obs_space, command_space = package.spaces["observation"], package.spaces["command"]
        network = TanhGaussianPolicy(
            obs_space.shape[0], command_space.shape[0], tuple(config["hidden"])
        )
        network.load_state_dict(
            {k: torch.from_numpy(np.array(v)) for k, v in package.tensors["policy"].items()}
        )
        return cls(network, config["skill"], obs_space, command_space, config["hold_steps"])


def check_policy_fits(policy: SPiRLPolicy, skill: Skill) -> None:
    """Refuses a policy packaged for another skill or with mismatched spaces.

    Raises:
        IncompatibleError: naming both and the fix.
    """
    ref = f"{skill.name}@{skill.version}"
    if policy.skill_ref.split("@")[0] != skill.name:
        raise IncompatibleError(
            f"the policy drives skill {policy.skill_ref!r} but {ref!r} was given; pass "
            f"--skill {policy.skill_ref.split('@')[0]} or a policy trained for {skill.name}"
        )
    if policy.command_space.shape != skill.command_space.shape:
        raise IncompatibleError(
            f"the policy outputs commands of shape {policy.command_space.shape} but skill {ref} "
            f"takes {skill.command_space.shape}; retrain the policy for this skill"
        )
    if policy.observation_space.shape != skill.observation_space.shape:
        raise IncompatibleError(
            f"the policy reads observations of shape {policy.observation_space.shape} but skill "
            f"{ref} reads {skill.observation_space.shape}"
        )

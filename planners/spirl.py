"""SPiRL's high level: a policy pi(z | s) in skill space that picks a new skill every
``hold_steps`` control steps (Pertsch et al. 2020, Algorithm 1 line 5).

:class:`SkillSpacePolicy` runs any actor network that maps observations to the pre-squash mean and
log-std of a Gaussian over skills; the learned, packaged policy is
:class:`skill_library.spirl.policy.SPiRLPolicy`.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from gymnasium.spaces import Box

from hrl_runtime.high_level import HighLevel


class SkillActor(Protocol):
    """``obs: (B, do)`` -> pre-squash ``mean (B, dz)`` and ``log_std (B, dz)``."""

    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class SkillSpacePolicy(HighLevel):
    """A high-level policy over a skill's commands: ``z = bound * tanh(u)``, ``u ~ N(mean, std)``.

    Args:
        network: the actor, a ``torch.nn.Module`` (see :class:`SkillActor`).
        observation_space: what it reads.
        command_space: the skill's command space (z in [-bound, bound]^dz).
        hold_steps: control steps per skill (a new z after each).
        deterministic: use the mode ``bound * tanh(mean)`` rather than sampling.
        seed: seed of the sampling noise.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        observation_space: Box,
        command_space: Box,
        hold_steps: int,
        deterministic: bool = True,
        seed: int = 0,
    ):
        self.network = network.eval()
        self.observation_space = observation_space
        self.command_space = command_space
        self.hold_steps = int(hold_steps)
        self.bound = float(command_space.high[0])
        self.deterministic = deterministic
        self.rng = np.random.default_rng(seed)
        self._command = np.zeros(command_space.shape, np.float32)
        self._last_step: int | None = None
        self._obs: np.ndarray | None = None

    def reset(self, obs: np.ndarray) -> None:
        self._last_step = None
        self.set_state(obs)

    def set_state(self, obs: np.ndarray) -> None:
        self._obs = np.asarray(obs, np.float32)

    @torch.no_grad()
    def choose(self, obs: np.ndarray) -> np.ndarray:
        """A skill ``(dz,)`` for ``obs (do,)``."""
        mean, log_std = self.network(torch.as_tensor(np.asarray(obs, np.float32))[None])
        pre = mean[0].numpy()
        if not self.deterministic:
            pre = pre + np.exp(log_std[0].numpy()) * self.rng.standard_normal(pre.shape)
        return (self.bound * np.tanh(pre)).astype(np.float32)

    def command(self, obs: np.ndarray, t: int) -> np.ndarray:
        """A new skill every ``hold_steps`` control steps (Algorithm 1 line 5), else the current."""
        if self._last_step is None or t - self._last_step >= self.hold_steps:
            self._command[:] = self.choose(obs)
            self._last_step = t
        return self._command

    def plan_info(self) -> dict[str, Any]:
        return {"command": self._command.copy()}

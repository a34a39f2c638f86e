"""Embedded skills as a registry package (kind ``embedding``): the latent-conditioned policy,
the per-task embedding means, and the skill dynamics that latent MPPI plans with."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.spaces import Box

from hrl_runtime.skill import PackageContents, Skill
from skill_library.dynamics import LearnedDynamics
from skill_library.package_checks import (
    MAX_LAYERS,
    MAX_WIDTH,
    check_dynamics_config,
    module_shapes,
)
from skill_library.planner_settings import (
    PLANNER_KEY,
    RecommendsPlanner,
    check_planner,
    planner_config,
    recommended_mppi,
)
from skill_library.sac.networks import TanhGaussianPolicy

MAX_TASKS = 4096
"""Most training tasks a package may list."""


@dataclass(frozen=True)
class EmbeddingSkillConfig:
    """How an embedded skill reads observations and commands."""

    latent_dim: int
    """dz: size of the skill embedding z (the command)."""
    tasks: int
    """T: training tasks whose embedding means and stds the package holds."""
    command_bound: float
    """Commands are z in [-command_bound, command_bound]^dz."""
    hold_steps: int
    """Control steps a command is held; the skill dynamics predicts this far ahead."""
    policy_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of pi(a | s, z)."""


class EmbeddingSkill(RecommendsPlanner, Skill):
    """A skill from the embedding space of Hausman et al. 2018: ``a = tanh(mu(s, z))``.

    The command is the embedding ``z``: a task's embedding mean (:meth:`task_command`) makes
    the arm do that task, and any other z an interpolation of the learned skills. ``act`` runs
    the policy in numpy (no torch on the control path) at every control step.

    Args:
        config: sizes and bounds.
        policy: the latent-conditioned policy over ``[obs, z]``.
        embedding_means: ``(T, dz)`` per-task means of p(z | t).
        embedding_stds: ``(T, dz)`` per-task stds of p(z | t).
        dynamics: fingertip x-y after holding z for ``hold_steps``.
        observation_space: ``(do,)``.
        action_space: ``(da,)``.
        mppi: latent MPPI settings the package recommends (``config.planner.mppi``).
    """

    kind: ClassVar[str] = "embedding"

    def __init__(
        self,
        config: EmbeddingSkillConfig,
        policy: TanhGaussianPolicy,
        embedding_means: np.ndarray,
        embedding_stds: np.ndarray,
        dynamics: LearnedDynamics,
        observation_space: Box,
        action_space: Box,
        mppi: dict[str, Any] | None = None,
    ):
        bound = config.command_bound
        command_space = Box(-bound, bound, shape=(config.latent_dim,), dtype=np.float32)
        super().__init__(
            observation_space, command_space, action_space, config.hold_steps, dynamics=dynamics
        )
        self.config = config
        self._recommend(mppi)
        self.policy = policy.eval()
        self.embedding_means = np.asarray(embedding_means, np.float32).reshape(
            config.tasks, config.latent_dim
        )
        self.embedding_stds = np.asarray(embedding_stds, np.float32).reshape(
            config.tasks, config.latent_dim
        )
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

    def task_command(self, task: int) -> np.ndarray:
        """The embedding mean of training task ``task``: ``(dz,)``."""
        return self.embedding_means[task].copy()

    def policy_mode(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        """``tanh(mu(s, z))`` for ``obs: (B, do)`` and ``commands: (B, dz)`` -> ``(B, da)``."""
        x = np.concatenate([np.asarray(obs, np.float32), np.asarray(commands, np.float32)], -1)
        for weight, bias in self._layers:
            x = np.maximum(x @ weight + bias, 0.0)
        return np.tanh(x @ self._mean[0] + self._mean[1])

    def act(self, obs: np.ndarray, command: np.ndarray) -> np.ndarray:
        return self.act_batch(np.asarray(obs)[None], np.asarray(command)[None])[0]

    def act_batch(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        actions = self.policy_mode(obs, commands)
        return np.clip(actions, self._low, self._high).astype(np.float32)

    # --- packaging -------------------------------------------------------------------------
    def package_config(self) -> dict[str, Any]:
        return {
            "skill": asdict(self.config),
            "dynamics": self.dynamics.config_json(),
            **planner_config(self.mppi),
        }

    def package_tensors(self) -> dict[str, dict[str, np.ndarray]]:
        policy = {k: v.detach().numpy() for k, v in self.policy.state_dict().items()}
        embedding = {"means": self.embedding_means, "stds": self.embedding_stds}
        return {"policy": policy, "embedding": embedding, "dynamics": self.dynamics.tensors()}

    def package_components(self) -> dict[str, str | None]:
        # The embedding means and stds (embedding.safetensors) are part of the command
        # interface, not a planner component: the manifest lists them under ``weights``.
        return {"policy": "policy", "dynamics": "dynamics", "prior": None, "value": None}

    @classmethod
    def check_package(cls, package: PackageContents) -> None:
        """Refuses a config whose sizes do not fit the spaces or the listed tensor shapes.

        Raises:
            PackageError: naming the ``config`` key or tensor at fault.
        """
        obs_dim, action_dim = package.vector_size("observation"), package.vector_size("action")
        config = package.config_fields()
        config.keys(("skill", "dynamics"), (PLANNER_KEY,))
        skill = config.section("skill")
        skill.keys(("latent_dim", "tasks", "command_bound", "hold_steps"), ("policy_hidden",))
        latent_dim = skill.integer("latent_dim", 1, 1024)
        if package.vector_size("command") != latent_dim:
            raise skill.error("latent_dim", "differs from the size of spaces.command")
        tasks = skill.integer("tasks", 1, MAX_TASKS)
        bound = skill.number("command_bound", 1e-6, 1e6)
        command = package.spaces["command"]
        if not (np.allclose(command.low, -bound) and np.allclose(command.high, bound)):
            raise skill.error("command_bound", "differs from the bounds of spaces.command")
        if skill.integer("hold_steps", 1, 100_000) != package.manifest["hold_steps"]:
            raise skill.error("hold_steps", "differs from the manifest's hold_steps")
        hidden = skill.integers("policy_hidden", 1, MAX_WIDTH, (128, 128), max_length=MAX_LAYERS)
        package.expect_tensors(
            "policy",
            module_shapes(lambda: TanhGaussianPolicy(obs_dim + latent_dim, action_dim, hidden)),
        )
        package.expect_tensors(
            "embedding", {"means": (tasks, latent_dim), "stds": (tasks, latent_dim)}
        )
        expected = check_dynamics_config(config.section("dynamics"), obs_dim, latent_dim)
        package.expect_tensors("dynamics", expected)
        check_planner(package)

    @classmethod
    def from_package(cls, package: PackageContents) -> EmbeddingSkill:
        raw = dict(package.config["skill"])
        raw["policy_hidden"] = tuple(raw.get("policy_hidden", (128, 128)))
        config = EmbeddingSkillConfig(**raw)
        observation_space, action_space = package.spaces["observation"], package.spaces["action"]
        policy = TanhGaussianPolicy(
            int(observation_space.shape[0]) + config.latent_dim,
            int(np.prod(action_space.shape)),
            config.policy_hidden,
        )
        policy.load_state_dict(
            {k: torch.from_numpy(np.array(v)) for k, v in package.tensors["policy"].items()}
        )
        dynamics = LearnedDynamics.from_tensors(
            package.config["dynamics"], package.tensors["dynamics"]
        )
        embedding = package.tensors["embedding"]
        return cls(
            config,
            policy,
            embedding["means"],
            embedding["stds"],
            dynamics,
            observation_space,
            action_space,
            recommended_mppi(package),
        )

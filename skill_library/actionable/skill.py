"""Actionable Models as a registry package: a goal-reaching skill whose command is an x-y goal.

The policy is ``pi(a | s, g) = argmax_a Q(s, a, g)`` (survey notes, "Associated policy"), found
by the cross-entropy method with :func:`kernels.cem_update` and held for ``action_repeat``
control steps (the rate of the data). The package also carries ``subgoals``: a few hundred
dataset observations that :class:`planners.chaining.SubgoalChaining` chooses among, so planning
needs no dataset at run time.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.spaces import Box

import kernels
from hrl_runtime.skill import PackageContents, Skill, SkillValue
from skill_library.actionable.config import PolicyConfig
from skill_library.actionable.networks import GoalQNetwork, NumpyQ, QNetworkConfig
from skill_library.package_checks import MAX_LAYERS, MAX_WIDTH, module_shapes


class GoalQValue(SkillValue):
    """``Q(s, a, g)`` of the trained network, in numpy.

    Args:
        network: the trained Q-network.
    """

    def __init__(self, network: GoalQNetwork):
        self.network = network.eval()
        self.numpy_q = NumpyQ(network)

    def value(self, obs: np.ndarray, actions: np.ndarray, goals: np.ndarray) -> np.ndarray:
        return self.numpy_q(obs, actions, goals)


class ActionableSkill(Skill):
    """Reach an x-y goal: ``a = argmax_a Q(s, a, g)`` by CEM, held for ``action_repeat`` steps.

    Args:
        network: the trained Q-network.
        observation_space, action_space: of the environment the data came from.
        command_space: the goals it takes (the maze bounds), ``(dg,)``.
        policy: CEM settings and the hold.
        subgoals: ``(M, do)`` dataset observations offered to subgoal planners.
        success_radius: the goal radius used in training (metres), for planners.
        subgoal_links: ``(M, M)`` bool, ``[i, j]`` when the data goes from subgoal i to j
            (:func:`~skill_library.actionable.train.subgoal_links`); all pairs when omitted.
    """

    kind: ClassVar[str] = "am"
    command_is_goal: ClassVar[bool] = True

    def __init__(
        self,
        network: GoalQNetwork,
        observation_space: Box,
        action_space: Box,
        command_space: Box,
        policy: PolicyConfig,
        subgoals: np.ndarray,
        success_radius: float,
        subgoal_links: np.ndarray | None = None,
    ):
        super().__init__(
            observation_space,
            command_space,
            action_space,
            policy.action_repeat,
            value=GoalQValue(network),
        )
        self.network = network.eval()
        self.policy = policy
        self.subgoals = np.asarray(subgoals, np.float32)
        self.success_radius = float(success_radius)
        m = len(self.subgoals)
        self.subgoal_links = (
            np.ones((m, m), bool) if subgoal_links is None else np.asarray(subgoal_links, bool)
        )
        self._q = self.value.numpy_q
        self._low = np.asarray(action_space.low, np.float32)
        self._high = np.asarray(action_space.high, np.float32)
        da, k = action_space.shape[0], policy.cem_samples
        # Buffers of the per-decision CEM, allocated once.
        self._samples = np.zeros((k, 1, da), np.float32)
        self._obs = np.zeros((k, observation_space.shape[0]), np.float32)
        self._goals = np.zeros((k, command_space.shape[0]), np.float32)
        self._mean = np.zeros((1, da), np.float32)
        self._std = np.ones((1, da), np.float32)
        self._rng = np.random.default_rng(policy.seed)
        self._tick = 0
        self._action = np.zeros(da, np.float32)
        self._command = np.full(command_space.shape, np.nan, np.float32)
        # Compile the CEM kernel (or load it from numba's cache) now, never in a control tick.
        self.greedy_action(
            np.zeros(observation_space.shape, np.float32),
            np.zeros(command_space.shape, np.float32),
            np.random.default_rng(0),
        )

    def reset(self) -> None:
        self._tick = 0
        self._command[:] = np.nan
        self._rng = np.random.default_rng(self.policy.seed)

    def greedy_action(
        self, obs: np.ndarray, goal: np.ndarray, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """``argmax_a Q(obs, a, goal)`` by CEM; ``obs (do,)``, ``goal (dg,)`` -> ``(da,)``.

        Args:
            obs: the observation.
            goal: the x-y goal.
            rng: the CEM's samples; the skill's own stream (reset by ``reset()``) by default.

        Returns:
            The best action scored in any iteration (not the final CEM mean).
        """
        policy = self.policy
        rng = self._rng if rng is None else rng
        self._obs[:] = obs
        self._goals[:] = goal
        samples = self._samples
        samples[:, 0] = rng.uniform(self._low, self._high, samples[:, 0].shape)
        best_value, best = -np.inf, self._action
        for iteration in range(policy.cem_iterations):
            if iteration > 0:
                noise = rng.standard_normal(samples.shape).astype(np.float32)
                np.clip(self._mean + self._std * noise, self._low, self._high, out=samples)
            logits = self._q.logits(self._obs, samples[:, 0], self._goals)
            top = int(np.argmax(logits))
            if logits[top] > best_value:
                best_value, best = float(logits[top]), samples[top, 0].copy()
            kernels.cem_update(
                samples, -logits, policy.cem_elites, self._mean, self._std, policy.cem_min_std
            )
        return best

    def act(self, obs: np.ndarray, command: np.ndarray) -> np.ndarray:
        command = np.asarray(command, np.float32)
        # Zero-order hold at the data's rate; a new goal takes effect at once.
        if self._tick % self.policy.action_repeat == 0 or not np.array_equal(
            command, self._command
        ):
            self._action[:] = self.greedy_action(np.asarray(obs, np.float32), command)
            self._command[:] = command
            self._tick = 0
        self._tick += 1
        return self._action.copy()

    def act_batch(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        # Each row as ``act`` right after ``reset()`` would give it (the skill contract).
        return np.stack(
            [
                self.greedy_action(
                    np.asarray(o, np.float32), c, np.random.default_rng(self.policy.seed)
                )
                for o, c in zip(obs, commands, strict=True)
            ]
        )

    # --- packaging -------------------------------------------------------------------------
    def package_config(self) -> dict[str, Any]:
        return {
            "network": asdict(self.network.config),
            "policy": asdict(self.policy),
            "success_radius": self.success_radius,
        }

    def package_tensors(self) -> dict[str, dict[str, np.ndarray]]:
        state = {k: v.detach().numpy() for k, v in self.network.state_dict().items()}
        subgoals = {"observations": self.subgoals, "links": self.subgoal_links.astype(np.uint8)}
        return {"value": state, "subgoals": subgoals}

    def package_components(self) -> dict[str, str | None]:
        return {"policy": None, "dynamics": None, "prior": None, "value": "value"}

    @classmethod
    def check_package(cls, package: PackageContents) -> None:
        """Refuses a config whose sizes do not fit the spaces or the listed tensor shapes.

        Raises:
            PackageError: naming the ``config`` key or tensor at fault.
        """
        obs_dim, action_dim = package.vector_size("observation"), package.vector_size("action")
        goal_dim = package.vector_size("command")
        config = package.config_fields()
        config.keys(("network", "policy", "success_radius"))
        network = config.section("network")
        network.keys(("obs_dim", "action_dim", "goal_indices", "hidden"))
        shape = QNetworkConfig(
            obs_dim=network.integer("obs_dim", obs_dim, obs_dim),
            action_dim=network.integer("action_dim", action_dim, action_dim),
            goal_indices=network.integers("goal_indices", 0, obs_dim - 1, length=goal_dim),
            hidden=network.integers("hidden", 1, MAX_WIDTH, max_length=MAX_LAYERS),
        )
        policy = config.section("policy")
        policy.keys(
            ("action_repeat", "cem_samples", "cem_iterations", "cem_elites", "cem_min_std"),
            ("seed",),
        )
        if policy.integer("action_repeat", 1, 100_000) != package.manifest["hold_steps"]:
            raise policy.error("action_repeat", "differs from hold_steps")
        samples = policy.integer("cem_samples", 1, 100_000)
        policy.integer("cem_iterations", 1, 1000)
        policy.integer("cem_elites", 1, samples)
        policy.number("cem_min_std", 0.0, 1e6)
        policy.integer("seed", 0, 2**32 - 1, default=0)
        config.number("success_radius", 0.0, 1e6, above=True)
        package.expect_tensors("value", module_shapes(lambda: GoalQNetwork(shape)))
        subgoals = package.tensor_shapes("subgoals").get("observations") or (0,)
        count = subgoals[0]
        expected = {"observations": (count, obs_dim)}
        if "links" in package.tensor_shapes("subgoals"):
            expected["links"] = (count, count)
        package.expect_tensors("subgoals", expected)

    @classmethod
    def from_package(cls, package: PackageContents) -> ActionableSkill:
        raw = dict(package.config["network"])
        raw["goal_indices"] = tuple(raw["goal_indices"])
        raw["hidden"] = tuple(raw["hidden"])
        network = GoalQNetwork(QNetworkConfig(**raw))
        network.load_state_dict(
            {k: torch.from_numpy(np.array(v)) for k, v in package.tensors["value"].items()}
        )
        return cls(
            network,
            package.spaces["observation"],
            package.spaces["action"],
            package.spaces["command"],
            PolicyConfig(**package.config["policy"]),
            package.tensors["subgoals"]["observations"],
            package.config["success_radius"],
            package.tensors["subgoals"].get("links"),
        )

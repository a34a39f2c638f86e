"""The skill contract: a command-conditioned controller plus what a planner needs to know about it.

A :class:`Skill` maps ``(obs, command) -> action``. Its ``command`` lives in ``command_space``: a
latent skill code ``z`` (DADS, SPiRL) or a goal ``g`` (Actionable Models, scripted reach). Planners
look at the optional components:

- ``dynamics`` (:class:`SkillDynamics`): ``q(s' | s, z)``, what holding a command for
  ``hold_steps`` control steps does to the planning state ``s`` (a slice of the observation);
- ``prior`` (:class:`SkillPrior`): a state-conditioned distribution over commands ``p(z | s)``;
- ``value`` (:class:`SkillValue`): a goal-conditioned value ``Q(s, a, g)`` in [0, 1].

Every packaged object (skills, and the trained high-level policies of later modules) implements
:class:`Packaged`, which is all the :class:`~hrl_runtime.registry.SkillRegistry` needs to save and
load it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from gymnasium.spaces import Box

from hrl_runtime.errors import IncompatibleError, PackageError
from hrl_runtime.package_schema import MANIFEST, Fields

COMPONENTS = ("dynamics", "prior", "value")


class SkillDynamics(ABC):
    """Skill dynamics ``q(s' | s, z)``: the planning state after holding a command.

    Attributes:
        state_indices: which observation entries form the planning state ``s`` (length ``ds``).
    """

    state_indices: tuple[int, ...]

    @property
    def state_dim(self) -> int:
        """Size ``ds`` of the planning state."""
        return len(self.state_indices)

    def state_of(self, obs: np.ndarray) -> np.ndarray:
        """Extracts the planning state from observations ``(..., do) -> (..., ds)``."""
        return np.asarray(obs)[..., list(self.state_indices)]

    @abstractmethod
    def predict(self, states: np.ndarray, commands: np.ndarray) -> np.ndarray:
        """Predicts the mean next planning state.

        Args:
            states: ``(B, ds)`` planning states.
            commands: ``(B, dc)`` commands, each held for the skill's ``hold_steps``.

        Returns:
            ``(B, ds)`` predicted planning states after ``hold_steps`` control steps.
        """

    def export_mlp(self) -> dict[str, Any] | None:
        """The network as plain arrays for the numba rollout kernels, or None if not an MLP.

        The keys are the arguments of ``kernels.make_mlp_weights``: ``hidden_weights`` and
        ``hidden_biases`` (lists), ``out_weight``, ``out_bias``, ``in_mean``, ``in_std``,
        ``out_mean``, ``out_std`` (float32 arrays), ``activation``, ``head``, ``n_components``,
        ``residual``.
        """
        return None

    def torch_module(self) -> Any:
        """A ``torch.nn.Module`` mapping ``(states (B, ds), commands (B, dc)) -> (B, ds)``, or
        None when the dynamics is not a torch model."""
        return None


class SkillPrior(ABC):
    """A state-conditioned distribution over commands ``p(z | s)``."""

    @abstractmethod
    def sample(self, obs: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draws ``n`` commands for observation ``obs: (do,)``; returns ``(n, dc)``."""

    @abstractmethod
    def log_prob(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        """Log-density of ``commands: (n, dc)`` under ``p(. | obs)``; returns ``(n,)``."""


class SkillValue(ABC):
    """A goal-conditioned value ``Q(s, a, g)``: the probability of reaching ``g``."""

    @abstractmethod
    def value(self, obs: np.ndarray, actions: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """Scores ``obs: (B, do)``, ``actions: (B, da)``, ``goals: (B, dg)``; returns ``(B,)``."""


@dataclass
class PackageContents:
    """What the registry read and verified from a package directory.

    The registry fills it once the manifest and every weight file verified (hashes, and tensor
    names, shapes and dtypes equal to what the manifest lists); a kind's
    :meth:`Packaged.check_package` then checks its config against it before
    :meth:`Packaged.from_package` builds anything.

    Attributes:
        path: the package directory.
        manifest: the parsed ``skill.json``.
        spaces: the manifest's spaces rebuilt as ``Box`` (``observation``, ``command``, ``action``).
        tensors: weights by file stem (``policy``, ``dynamics`` ...), each a name -> array dict.
    """

    path: str
    manifest: dict[str, Any]
    spaces: dict[str, Box]
    tensors: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any]:
        """The kind-specific configuration stored in the manifest."""
        return self.manifest.get("config", {})

    @property
    def manifest_path(self) -> Path:
        """The package's ``skill.json``."""
        return Path(self.path) / MANIFEST

    def config_fields(self, fix: str = "re-export the package with SkillRegistry.save") -> Fields:
        """The ``config`` object as :class:`~hrl_runtime.package_schema.Fields`, for typed reads
        that name ``config.<key>`` when they refuse a value."""
        return Fields(self.manifest_path, self.config, "config", fix)

    def vector_size(self, space: str) -> int:
        """The size of the one-dimensional space ``space`` (``observation``, ``command`` ...).

        Raises:
            PackageError: the manifest has no such space, or it is not one-dimensional.
        """
        box = self.spaces.get(space)
        if box is None or len(box.shape) != 1:
            shape = None if box is None else box.shape
            raise PackageError(
                self.manifest_path,
                f"the {self.manifest.get('kind')!r} kind needs a one-dimensional {space} space, "
                f"got shape {shape}",
                field=f"spaces.{space}",
            )
        return int(box.shape[0])

    def tensor_shapes(self, stem: str) -> dict[str, tuple[int, ...]]:
        """Tensor name -> shape of ``<stem>.safetensors`` as the manifest lists them.

        Raises:
            PackageError: the manifest lists no such weight file.
        """
        entry = self.manifest.get("weights", {}).get(f"{stem}.safetensors")
        if entry is None:
            raise PackageError(
                self.manifest_path,
                f"the {self.manifest.get('kind')!r} kind needs weight file {stem}.safetensors",
                field="weights",
                fix="re-export the package with SkillRegistry.save",
            )
        return {name: tuple(spec["shape"]) for name, spec in entry["tensors"].items()}

    def expect_tensors(self, stem: str, expected: dict[str, tuple[int, ...]]) -> None:
        """Refuses a weight file whose tensors are not exactly ``expected`` (names and shapes),
        the shapes the configuration implies.

        Raises:
            PackageError: naming the first tensor that is missing, extra or of another shape.
        """
        actual = self.tensor_shapes(stem)
        field_prefix = f"weights.{stem}.safetensors.tensors"
        for name in sorted(set(expected) | set(actual)):
            want, have = expected.get(name), actual.get(name)
            # A scalar may be stored as one entry (torch loads a (1,) tensor into a 0-d buffer).
            if want == have or (want is not None and {want, have} == {(), (1,)}):
                continue
            problem = (
                f"the config implies tensor {name!r} of shape {list(want)}, the package has "
                + ("none" if have is None else str(list(have)))
                if want is not None
                else f"tensor {name!r} is not one the config implies"
            )
            raise PackageError(
                self.manifest_path,
                problem,
                field=f"{field_prefix}.{name}",
                fix="the config and the weights disagree; re-export the package",
            )


class Packaged(ABC):
    """Anything the registry can save and load: skills and trained high-level policies.

    Subclasses set ``kind`` (the registry's key for the class), implement the packaging hooks,
    and check their own ``config`` in :meth:`check_package`.
    """

    kind: ClassVar[str]
    #: "skill" for low-level controllers, "policy" for high-level policies.
    role: ClassVar[str] = "skill"

    @abstractmethod
    def package_spaces(self) -> dict[str, Box]:
        """The spaces to record in the manifest, by name."""

    @abstractmethod
    def package_config(self) -> dict[str, Any]:
        """JSON-serializable configuration needed to rebuild the object from its tensors."""

    @abstractmethod
    def package_tensors(self) -> dict[str, dict[str, np.ndarray]]:
        """Weights by file stem; each stem becomes ``<stem>.safetensors``."""

    def package_components(self) -> dict[str, str | None]:
        """Component name -> file stem holding it (or None when absent)."""
        return {}

    def package_extra(self) -> dict[str, Any]:
        """Extra manifest fields (e.g. ``hold_steps``)."""
        return {}

    @classmethod
    def check_package(cls, package: PackageContents) -> None:
        """Checks the kind's ``config`` before anything is built.

        The registry calls it from ``load`` and ``verify`` once the manifest passed its schema
        and the weight files verified. Check every key's type and range, and that the config
        fits the spaces and the tensor shapes (:meth:`PackageContents.tensor_shapes`,
        :meth:`PackageContents.expect_tensors`), so that :meth:`from_package` cannot fail on a
        bad package. The default accepts any config.

        Args:
            package: The verified package.

        Raises:
            PackageError: naming the field at fault (use :meth:`PackageContents.config_fields`).
        """

    @classmethod
    @abstractmethod
    def from_package(cls, package: PackageContents) -> Packaged:
        """Rebuilds the object from verified package contents."""


class Skill(Packaged):
    """A command-conditioned low-level controller.

    Args:
        observation_space: observations the skill reads, ``(do,)``.
        command_space: commands it follows, ``(dc,)``.
        action_space: actions it outputs, ``(da,)``.
        hold_steps: control steps a command is meant to be held before the high level replans.
        dynamics: optional skill-dynamics model.
        prior: optional command prior.
        value: optional goal-conditioned value.
    """

    def __init__(
        self,
        observation_space: Box,
        command_space: Box,
        action_space: Box,
        hold_steps: int,
        *,
        dynamics: SkillDynamics | None = None,
        prior: SkillPrior | None = None,
        value: SkillValue | None = None,
    ):
        if hold_steps < 1:
            raise ValueError(f"hold_steps must be >= 1, got {hold_steps}")
        self.observation_space = observation_space
        self.command_space = command_space
        self.action_space = action_space
        self.hold_steps = int(hold_steps)
        self.dynamics = dynamics
        self.prior = prior
        self.value = value
        #: Set by the registry when the skill was loaded from a package.
        self.name: str = ""
        self.version: str = ""

    def reset(self) -> None:
        """Clears any internal state at the start of an episode (stateless by default)."""

    @abstractmethod
    def act(self, obs: np.ndarray, command: np.ndarray) -> np.ndarray:
        """Returns the action ``(da,)`` for observation ``obs: (do,)`` and ``command: (dc,)``."""

    def act_batch(self, obs: np.ndarray, commands: np.ndarray) -> np.ndarray:
        """Batched :meth:`act`: ``obs: (B, do)``, ``commands: (B, dc)`` -> ``(B, da)``."""
        return np.stack([self.act(o, c) for o, c in zip(obs, commands, strict=True)])

    def planner_settings(self, planner: str) -> dict[str, Any]:
        """Settings the skill's package recommends for high level ``planner`` (for ``"mppi"``:
        ``planners.MPPIConfig`` fields), which ``planners.build_goal_follower`` applies when its
        caller passes no settings of its own. The default recommends none."""
        return {}

    @property
    def components(self) -> dict[str, bool]:
        """Which optional components the skill offers."""
        return {name: getattr(self, name) is not None for name in COMPONENTS}

    def package_spaces(self) -> dict[str, Box]:
        return {
            "observation": self.observation_space,
            "command": self.command_space,
            "action": self.action_space,
        }

    def package_extra(self) -> dict[str, Any]:
        return {"hold_steps": self.hold_steps}

    def __repr__(self) -> str:
        label = f"{self.name}@{self.version}" if self.name else type(self).__name__
        offered = [name for name, present in self.components.items() if present]
        return f"<Skill {label} kind={self.kind} components={offered}>"


def check_compatible(skill: Skill, env: Any, env_id: str) -> None:
    """Refuses a skill whose observations or actions do not match the environment's.

    Raises:
        IncompatibleError: naming the mismatch and the fix.
    """
    label = skill.name or type(skill).__name__
    env_obs, env_act = env.observation_space.shape, env.action_space.shape
    if skill.observation_space.shape != env_obs:
        raise IncompatibleError(
            f"skill {label!r} reads observations of shape {skill.observation_space.shape} but "
            f"{env_id} gives {env_obs}; pick an environment the skill was made for"
        )
    if skill.action_space.shape != env_act:
        raise IncompatibleError(
            f"skill {label!r} outputs actions of shape {skill.action_space.shape} but {env_id} "
            f"takes {env_act}; pick an environment the skill was made for"
        )

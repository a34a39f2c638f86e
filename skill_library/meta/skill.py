"""A DADS skill whose dynamics were meta-learned (MAML) to adapt online, as a registry kind."""

from __future__ import annotations

import copy
from dataclasses import asdict
from typing import Any, ClassVar

from hrl_runtime.skill import PackageContents
from skill_library.dads.skill import DADSSkill
from skill_library.dynamics import LearnedDynamics
from skill_library.meta.config import AdaptationConfig
from skill_library.meta.online import OnlineAdapter
from skill_library.planner_settings import (
    PLANNER_KEY,
    RecommendsPlanner,
    check_planner,
    planner_config,
    recommended_mppi,
)

ADAPTATION_KEY = "adaptation"
"""The ``config`` entry with the adaptation settings (M, inner steps, inner learning rate)."""


class MetaDADSSkill(RecommendsPlanner, DADSSkill):
    """A DADS policy with meta-learned skill dynamics and the settings to adapt them online.

    Acts exactly as the DADS skill it was made from; its ``dynamics`` holds the
    meta-parameters, and :meth:`online_adapter` makes the planner-side adapter.

    Args:
        base: the DADS skill (its policy and spaces are shared).
        dynamics: the meta-learned dynamics.
        adaptation: M, inner steps and inner learning rate.
        mppi: latent MPPI settings the package recommends (``MPPI_SETTINGS`` fields).
    """

    kind: ClassVar[str] = "dads_meta"

    def __init__(
        self,
        base: DADSSkill,
        dynamics: LearnedDynamics,
        adaptation: AdaptationConfig,
        mppi: dict[str, Any] | None = None,
    ):
        adaptation.validate()
        super().__init__(
            base.config, base.policy, dynamics, base.observation_space, base.action_space
        )
        self.adaptation = adaptation
        self._recommend(mppi)

    def online_adapter(self, settings: AdaptationConfig | None = None) -> OnlineAdapter:
        """An adapter of this skill's dynamics (the manifest's settings unless given)."""
        return OnlineAdapter(
            self.dynamics.export_mlp(), settings or self.adaptation, self.hold_steps
        )

    def package_config(self) -> dict[str, Any]:
        return {
            **super().package_config(),
            ADAPTATION_KEY: asdict(self.adaptation),
            **planner_config(self.mppi),
        }

    @staticmethod
    def _dads_part(package: PackageContents) -> PackageContents:
        """The package as the DADS kind sees it (without the adaptation settings)."""
        manifest = copy.copy(package.manifest)
        own = (ADAPTATION_KEY, PLANNER_KEY)
        manifest["config"] = {k: v for k, v in package.config.items() if k not in own}
        return PackageContents(package.path, manifest, package.spaces, package.tensors)

    @classmethod
    def check_package(cls, package: PackageContents) -> None:
        """The DADS checks, then the adaptation settings.

        Raises:
            PackageError: naming the ``config`` key at fault.
        """
        config = package.config_fields()
        if ADAPTATION_KEY not in package.config:
            raise config.error(ADAPTATION_KEY, "is missing (M, inner steps, inner learning rate)")
        DADSSkill.check_package(cls._dads_part(package))
        fields = config.section(ADAPTATION_KEY)
        fields.keys(
            ("context", "inner_steps", "inner_lr"), ("accumulate", "min_context", "backtracking")
        )
        context = fields.integer("context", 1, 1024)
        fields.integer("inner_steps", 1, 100)
        fields.number("inner_lr", 0.0, 99.0, above=True)
        fields.boolean("accumulate", default=False)
        fields.integer("backtracking", 0, 10, default=2)
        fields.integer("min_context", 1, context, default=min(4, context))
        dynamics = package.config["dynamics"]["network"]
        if int(dynamics.get("num_experts", 4)) != 0:
            raise (
                config.section("dynamics")
                .section("network")
                .error("num_experts", "must be 0 (a plain mean head) for online adaptation")
            )
        check_planner(package)

    @classmethod
    def from_package(cls, package: PackageContents) -> MetaDADSSkill:
        base = DADSSkill.from_package(cls._dads_part(package))
        raw = dict(package.config[ADAPTATION_KEY])
        return cls(base, base.dynamics, AdaptationConfig(**raw), recommended_mppi(package))


def adapter_for(skill: Any, settings: AdaptationConfig | None = None) -> OnlineAdapter:
    """An online adapter of any skill whose dynamics export an MLP: the meta-learned one with
    its manifest's settings, or (for comparison) a plain skill's dynamics fine-tuned with
    ``settings`` (default :class:`AdaptationConfig`).

    Raises:
        IncompatibleError: the skill has no dynamics the kernels can run.
    """
    from hrl_runtime.errors import IncompatibleError

    if isinstance(skill, MetaDADSSkill):
        return skill.online_adapter(settings)
    dynamics = getattr(skill, "dynamics", None)
    exported = dynamics.export_mlp() if dynamics is not None else None
    if not exported:
        label = getattr(skill, "name", "") or type(skill).__name__
        raise IncompatibleError(
            f"--adapt needs skill dynamics the kernels run (an exported MLP); skill {label!r} "
            "has none; use a skill with learned dynamics (e.g. one from `hrl train adapt`)"
        )
    return OnlineAdapter(exported, settings or AdaptationConfig(), skill.hold_steps)

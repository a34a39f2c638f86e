"""MAML meta-learned skill dynamics that adapt online (Finn et al. 2017; GrBAL, Nagabandi et al.
2019).

- :mod:`skill_library.meta.config`: :class:`AdaptationConfig` (M, inner steps, inner learning
  rate) and :class:`MetaConfig` (``hrl train adapt``);
- :mod:`skill_library.meta.networks`, :mod:`skill_library.meta.losses`: the dynamics network in
  functional form and the MAML losses (pure functions);
- :mod:`skill_library.meta.data`, :mod:`skill_library.meta.train`: the skill's own transitions on
  perturbed bodies, and the meta-training loop;
- :mod:`skill_library.meta.skill`: the ``dads_meta`` registry kind;
- :mod:`skill_library.meta.online`: the numpy adapter the planner runs at every replanning.

Names are imported on first use, so that reading the configuration (the CLI's defaults) loads
neither torch nor numba.
"""

from skill_library import lazy_exports

__all__ = ["AdaptationConfig", "MetaConfig", "MetaDADSSkill", "OnlineAdapter", "adapter_for"]
__getattr__ = lazy_exports(
    __name__,
    {
        "AdaptationConfig": "config",
        "MetaConfig": "config",
        "MetaDADSSkill": "skill",
        "OnlineAdapter": "online",
        "adapter_for": "skill",
    },
)

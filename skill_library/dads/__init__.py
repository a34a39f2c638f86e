"""DADS: skills discovered without reward, with a skill-dynamics model for planning."""

from skill_library import lazy_exports

__all__ = [
    "DADSConfig",
    "DADSNetworkConfig",
    "DADSSkill",
    "DADSSkillConfig",
    "DADSTrainer",
    "dynamics_loss",
    "evaluate_skills",
    "intrinsic_reward",
    "make_networks",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "DADSConfig": "config",
        "DADSNetworkConfig": "config",
        "DADSSkill": "skill",
        "DADSSkillConfig": "skill",
        "DADSTrainer": "train",
        "dynamics_loss": "losses",
        "evaluate_skills": "evaluation",
        "intrinsic_reward": "losses",
        "make_networks": "networks",
    },
)

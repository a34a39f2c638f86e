"""DADS: skills discovered without reward, with a skill-dynamics model for planning."""

from skill_library.dads.losses import dynamics_loss, intrinsic_reward
from skill_library.dads.networks import DADSNetworkConfig, make_networks
from skill_library.dads.skill import DADSSkill, DADSSkillConfig
from skill_library.dads.train import DADSConfig, DADSTrainer, evaluate_skills

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

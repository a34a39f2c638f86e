"""Soft actor-critic, shared by every algorithm that learns a policy with SAC (DADS, SPiRL)."""

from skill_library.sac.losses import actor_loss, critic_loss, soft_update, temperature_loss
from skill_library.sac.networks import TanhGaussianPolicy, TwinQ
from skill_library.sac.train import SACConfig, SACLearner

__all__ = [
    "SACConfig",
    "SACLearner",
    "TanhGaussianPolicy",
    "TwinQ",
    "actor_loss",
    "critic_loss",
    "soft_update",
    "temperature_loss",
]

"""Soft actor-critic, shared by every algorithm that learns a policy with SAC (DADS, SPiRL)."""

from skill_library import lazy_exports

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
__getattr__ = lazy_exports(
    __name__,
    {
        "SACConfig": "config",
        "SACLearner": "train",
        "TanhGaussianPolicy": "networks",
        "TwinQ": "networks",
        "actor_loss": "losses",
        "critic_loss": "losses",
        "soft_update": "losses",
        "temperature_loss": "losses",
    },
)

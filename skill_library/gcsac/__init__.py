"""Goal-conditioned SAC: a baseline that learns "walk to (x, y)" directly from a dense distance
reward, for comparison with skills discovered without reward (DADS) and planned over."""

from skill_library import lazy_exports

__all__ = ["GCSACConfig", "GCSACSkill", "GCSACSkillConfig", "GCSACTrainer", "dense_reward"]
__getattr__ = lazy_exports(
    __name__,
    {
        "GCSACConfig": "config",
        "GCSACSkill": "skill",
        "GCSACSkillConfig": "skill",
        "GCSACTrainer": "train",
        "dense_reward": "train",
    },
)

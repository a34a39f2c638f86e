"""SPiRL (Pertsch et al. 2020): skills and a state-conditioned skill prior learned from offline
data, and the prior-regularized high-level policy trained on a downstream task."""

from skill_library import lazy_exports

__all__ = [
    "SPiRLConfig",
    "SPiRLPolicy",
    "SPiRLSkill",
    "SPiRLTrainer",
    "SkillModel",
    "SkillModelConfig",
    "SkillTrainingConfig",
    "skill_model_loss",
    "train_skill_model",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "SPiRLConfig": "config",
        "SPiRLPolicy": "policy",
        "SPiRLSkill": "skill",
        "SPiRLTrainer": "downstream",
        "SkillModel": "networks",
        "SkillModelConfig": "config",
        "SkillTrainingConfig": "config",
        "skill_model_loss": "losses",
        "train_skill_model": "train",
    },
)

"""Skill embedding space (Hausman et al. 2018): many related skills in one latent space.

An embedding network ``p(z | task)`` (a Gaussian per task), a latent-conditioned policy
``pi(a | s, z)`` and an inference network ``q(z | window of states)`` are trained together,
off-policy, on the entropy-regularized multi-task objective of the paper; a skill-dynamics model
of the fingertip after holding ``z`` lets latent MPPI control the arm in the embedding space.
"""

from skill_library import lazy_exports

__all__ = [
    "EmbeddingConfig",
    "EmbeddingNetworkConfig",
    "EmbeddingSkill",
    "EmbeddingSkillConfig",
    "EmbeddingTrainer",
    "InferenceNet",
    "TaskEmbedding",
    "augmented_reward",
    "embedding_actor_loss",
    "inference_loss",
]
__getattr__ = lazy_exports(
    __name__,
    {
        "EmbeddingConfig": "config",
        "EmbeddingNetworkConfig": "config",
        "EmbeddingSkill": "skill",
        "EmbeddingSkillConfig": "skill",
        "EmbeddingTrainer": "train",
        "InferenceNet": "networks",
        "TaskEmbedding": "networks",
        "augmented_reward": "losses",
        "embedding_actor_loss": "losses",
        "inference_loss": "losses",
    },
)

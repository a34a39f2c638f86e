"""The DADS networks: a skill-conditioned policy, twin critics and the skill dynamics."""

from __future__ import annotations

from skill_library.dads.config import DADSNetworkConfig
from skill_library.networks import DynamicsNetConfig, SkillDynamicsNet
from skill_library.sac.config import SACConfig
from skill_library.sac.train import SACLearner


def make_networks(
    policy_input_dim: int,
    action_dim: int,
    dynamics_state_dim: int,
    latent_dim: int,
    config: DADSNetworkConfig,
    sac: SACConfig,
    seed: int,
) -> tuple[SACLearner, SkillDynamicsNet]:
    """The SAC learner over ``[policy features, z]`` and the skill dynamics over the chosen dims."""
    learner = SACLearner(
        policy_input_dim + latent_dim,
        action_dim,
        SACConfig(**{**sac.__dict__, "hidden": config.policy_hidden}),
        seed=seed,
    )
    dynamics = SkillDynamicsNet(
        DynamicsNetConfig(
            state_dim=dynamics_state_dim,
            command_dim=latent_dim,
            hidden=config.dynamics_hidden,
            activation=config.dynamics_activation,
            num_experts=config.num_experts,
            fixed_variance=config.fixed_variance,
            residual=True,
        )
    )
    return learner, dynamics

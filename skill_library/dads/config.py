"""DADS settings (torch-free: ``hrl train dads`` reads its defaults from here without torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hrl_runtime.errors import ConfigError
from skill_library.sac.config import SACConfig

FALL_ENVS = ("Ant-v5",)
"""Environments whose episodes may go on after a fall (Gymnasium's ``terminate_when_unhealthy``)."""


@dataclass(frozen=True)
class DADSNetworkConfig:
    """Sizes of the DADS networks."""

    policy_hidden: tuple[int, ...] = (256, 256)
    """Hidden widths of pi(a | s, z) and of the critics."""
    dynamics_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the skill dynamics q(s' | s, z)."""
    dynamics_activation: str = "tanh"
    """Hidden activation of the skill dynamics."""
    num_experts: int = 4
    """Mixture components of the skill dynamics."""
    fixed_variance: bool = True
    """Unit-variance components (in normalized units), as DADS uses for navigation."""


@dataclass(frozen=True)
class DADSConfig:
    """Everything a DADS run needs; the defaults train point-mass skills."""

    env_id: str = "hrl/PointArena-v0"
    """Environment to discover skills in."""
    latent_dim: int = 2
    """dz: skills are z in [-1, 1]^dz (continuous uniform prior)."""
    steps: int = 100_000
    """Total policy steps (each is ``action_repeat`` control steps)."""
    num_envs: int = 16
    """Environments stepped side by side; one episode each per iteration."""
    episode_length: int = 30
    """Policy steps per episode."""
    skill_hold: int | None = None
    """Resample z every this many policy steps; None holds it for the whole episode."""
    action_repeat: int = 10
    """Control steps each policy action is held."""
    dynamics_horizon: int = 1
    """k: policy steps the skill dynamics predicts over, ``q(s_{t+k} | s_t, z)``, with z held;
    the skill's ``hold_steps`` (one planning step) is ``action_repeat * k``. On a legged body a
    single 0.05 s step moves the torso ~1 cm, mostly gait wobble; a window of k steps averages
    the gait out. The intrinsic reward of step t scores the window ending at s_{t+1}."""
    intrinsic_weight: float = 1.0
    """Weight of the intrinsic reward against the survival bonus and the entropy term."""
    survival_bonus: float = 0.0
    """Reward added at every step that does not end the episode (Ant: the environment's own
    healthy reward of 1.0), so falling, which ends the episode, is never a way out of a
    negative intrinsic reward. It rewards staying in the healthy range, no direction."""
    dynamics_dims: tuple[int, ...] | None = (0, 1)
    """Observation entries the skill dynamics models (the x-y prior); None: all."""
    hide_dynamics_dims: bool = True
    """Hide ``dynamics_dims`` from the policy (skills then do not depend on position)."""
    policy_obs_dims: tuple[int, ...] | None = None
    """Observation entries the policy may see before hiding (None: all); Ant's preset keeps
    qpos and qvel (entries 0-28) and leaves out the 78 contact forces."""
    terminate_on_fall: bool = True
    """End an episode when the body leaves its healthy range (Ant's torso height). False keeps
    stepping a fallen body to the episode's end, as the DADS authors' Ant did (their episodes
    ended only on a non-finite state); falls are then counted from the environment's own
    ``is_healthy`` and end nothing. Only for environments with a healthy range (Ant-v5)."""
    random_start: bool = True
    """Start episodes anywhere in free space (point-mass envs), so skills cover the arena."""
    num_alternatives: int = 100
    """L: prior samples in the reward's denominator."""
    dynamics_updates: int = 32
    """Gradient steps on q_phi per iteration."""
    sac_updates: int = 64
    """SAC updates per iteration (when ``sac_updates_per_step`` is 0)."""
    sac_updates_per_step: float = 0.0
    """If > 0: SAC updates per collected policy step instead of a fixed count per iteration
    (a legged body needs ~0.5-1 to learn a gait on the step budget)."""
    relabel_every: int = 0
    """Off-policy: relabel a fresh pool of ``relabel_pool`` transitions every this many SAC
    updates (0: once per iteration)."""
    batch_size: int = 256
    """Minibatch size of both learners."""
    dynamics_lr: float = 3e-4
    """Adam step size of the skill dynamics."""
    off_policy: bool = False
    """Replay with importance-weighted dynamics updates (off-DADS) instead of on-policy data."""
    replay_capacity: int = 100_000
    """Replay size when ``off_policy``."""
    importance_clip: float = 10.0
    """Upper clip of the off-DADS importance ratios."""
    relabel_pool: int = 4096
    """Off-policy: transitions relabelled per iteration for the SAC updates."""
    sac: SACConfig = field(default_factory=lambda: SACConfig(initial_alpha=0.1))
    """SAC hyperparameters."""
    networks: DADSNetworkConfig = field(default_factory=DADSNetworkConfig)
    """Network sizes."""
    seed: int = 0
    """Seed of everything (skills, environments, networks)."""
    checkpoint_every: int = 10
    """Iterations between checkpoints."""
    env_workers: int = 0
    """Workers stepping groups of the environments beside the trainer's own group."""
    env_worker_backend: str = "processes"
    """Where the workers run: ``processes`` on this machine, or ``ray`` (Ray actors, one CPU
    each, on the running Ray instance or cluster)."""
    torch_threads: int = 1
    """torch intra-op threads of the training updates (BLAS runs with one)."""

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        checks = [
            (self.latent_dim >= 1, "latent_dim must be >= 1"),
            (self.steps >= 1, "steps must be >= 1"),
            (self.num_envs >= 1, "num_envs must be >= 1"),
            (self.episode_length >= 2, "episode_length must be >= 2"),
            (self.action_repeat >= 1, "action_repeat must be >= 1"),
            (self.num_alternatives >= 1, "num_alternatives must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0 <= self.env_workers < self.num_envs, "env_workers must be in [0, num_envs)"),
            (self.torch_threads >= 1, "torch_threads must be >= 1"),
            (
                self.env_worker_backend in ("processes", "ray"),
                "env_worker_backend must be 'processes' or 'ray'",
            ),
            (self.skill_hold is None or self.skill_hold >= 1, "skill_hold must be >= 1 or None"),
            (self.dynamics_horizon >= 1, "dynamics_horizon must be >= 1"),
            (
                self.dynamics_horizon < self.episode_length,
                "dynamics_horizon must be shorter than episode_length",
            ),
            (
                self.skill_hold is None or self.skill_hold >= self.dynamics_horizon,
                "skill_hold must be >= dynamics_horizon (a window holds one skill)",
            ),
            (self.sac_updates_per_step >= 0, "sac_updates_per_step must be >= 0"),
            (self.relabel_every >= 0, "relabel_every must be >= 0"),
            (
                self.terminate_on_fall or self.env_id in FALL_ENVS,
                f"terminate_on_fall=False needs an environment with a healthy range, one of "
                f"{FALL_ENVS}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"DADSConfig: {message}")

    def to_json(self) -> dict[str, Any]:
        """The config as nested plain values (as training manifests record it)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DADSConfig:
        """The inverse of :meth:`to_json` (lists become the tuples the fields hold)."""
        data = dict(data)
        data["sac"] = SACConfig(**{**data["sac"], "hidden": tuple(data["sac"]["hidden"])})
        nets = dict(data["networks"])
        for key in ("policy_hidden", "dynamics_hidden"):
            nets[key] = tuple(nets[key])
        data["networks"] = DADSNetworkConfig(**nets)
        for key in ("dynamics_dims", "policy_obs_dims"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


ANT_QPOS_QVEL = tuple(range(29))
"""Ant-v5 observation entries of qpos (15, torso x-y first) and qvel (14), before the contact
forces (as the DADS authors' Ant observed)."""


def ant_preset() -> DADSConfig:
    """DADS on Ant-v5 with the x-y prior, the authors' settings scaled to a 2-core machine.

    Sharma et al. used (512, 512) networks and held one skill per 200-step episode. Here:
    - (128, 128) networks and one SAC update per two collected steps: on one core an update
      costs ~12 ms at (128, 128) against ~25 ms at (256, 256), so the width buys twice the
      updates within the 2-hour budget; latent MPPI over the (128, 128) skill
      dynamics plans K=1024 x T=10 in ~12 ms, well inside Ant's 50 ms control period.
    - the skill dynamics predicts the torso x-y change over k = 10 policy steps (0.5 s), and a
      planning step holds z for those 10 steps; z is resampled halfway through each episode,
      so the policy also learns to switch skills mid-stride, as the planner will ask it to.
    - the environment's healthy reward (1 per step) is the survival bonus: the episode ends
      when the torso leaves the healthy range, and staying up is part of a good skill. The
      intrinsic reward weighs 5 against it. Not yet enough: runs at weights 1, 5 and 20 each
      learned to stay up within 50-60k steps, but z explained under 1% of the variance of the
      10-step torso displacement throughout (skill distinctness 0.99 at weight 1), so no skill
      signal had started to grow (README, "DADS on Ant-v5").
    - 32 prior samples in the reward's denominator (the relabelling otherwise costs more than
      the SAC update), a fresh relabelled pool every 32 updates.
    The rest follows the authors: 2-D skills, 4 fixed-variance experts over the torso x-y
    change, SAC with a fixed entropy weight 0.1, lr 3e-4, batch 256, off-DADS replay.
    """
    return DADSConfig(
        env_id="Ant-v5",
        latent_dim=2,
        steps=300_000,
        num_envs=8,
        episode_length=200,
        skill_hold=100,
        action_repeat=1,  # Ant's control period is already 0.05 s (5 MuJoCo steps)
        dynamics_horizon=10,
        survival_bonus=1.0,
        intrinsic_weight=5.0,
        dynamics_dims=(0, 1),
        hide_dynamics_dims=True,
        policy_obs_dims=ANT_QPOS_QVEL,
        random_start=False,
        num_alternatives=32,
        dynamics_updates=64,
        sac_updates_per_step=0.5,
        batch_size=256,
        off_policy=True,
        replay_capacity=400_000,
        relabel_pool=4096,
        relabel_every=32,
        sac=SACConfig(initial_alpha=0.1, learn_alpha=False, hidden=(128, 128)),
        networks=DADSNetworkConfig(policy_hidden=(128, 128), dynamics_hidden=(128, 128)),
        checkpoint_every=10,
        # One process: beside another busy process a worker halved collection (~600 against
        # ~1,050 steps/s); on an idle machine try --env-workers 1.
        env_workers=0,
    )


PRESETS = {"ant": ant_preset}
"""Named configurations ``hrl train dads --preset NAME`` starts from."""
DEFAULT_PRESET_BY_ENV = {"Ant-v5": "ant"}
"""The preset an environment id selects when no ``--preset`` is given."""


def preset(name: str) -> DADSConfig:
    """The named preset.

    Raises:
        ConfigError: ``name`` is not one of :data:`PRESETS`.
    """
    if name not in PRESETS:
        raise ConfigError(f"DADS preset {name!r} unknown; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()

"""Goal-conditioned SAC settings (torch-free: ``hrl train gcsac`` reads its defaults from here).

The defaults are the baseline of issue 14's comparison on Ant-v5: the same body state, network
widths, batch, learning rate, entropy weight and update ratio as the DADS Ant preset
(:func:`skill_library.dads.config.ant_preset`), so that the two differ in the method (a skill
library planned over against a policy trained on the goal task itself), not in the learner.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hrl_runtime.errors import ConfigError
from skill_library.dads.config import ANT_QPOS_QVEL, ant_preset
from skill_library.sac.config import SACConfig


@dataclass(frozen=True)
class GCSACConfig:
    """Everything a goal-conditioned SAC run needs; the defaults train on Ant-v5."""

    env_id: str = "Ant-v5"
    """Environment to learn goal reaching in (it must have an x-y goal space)."""
    steps: int = field(default_factory=lambda: ant_preset().steps)
    """Total policy steps (one control step each); by default the budget of the DADS Ant
    preset (``hrl train gcsac --steps-of dads-ant`` takes the steps a DADS package trained)."""
    num_envs: int = 8
    """Environments stepped side by side; one episode each per iteration."""
    episode_length: int = 200
    """Policy steps per episode (the DADS preset's); an episode also ends on success or a
    fall."""
    success_radius: float = 1.0
    """An episode succeeds (and ends) once the torso is this close to the goal, metres (Ant's
    goal-following radius)."""
    policy_obs_dims: tuple[int, ...] | None = ANT_QPOS_QVEL
    """Observation entries the policy sees before ``xy_dims`` are removed (None: all); Ant:
    qpos and qvel (0-28), the body state the DADS Ant policy sees, without contact forces."""
    xy_dims: tuple[int, int] = (0, 1)
    """Observation entries of the torso x-y: hidden from the policy, which sees the goal
    relative to them (``g - xy``) instead."""
    healthy_reward: float = 1.0
    """Reward of every step that does not end in a fall (the environment's healthy reward;
    the DADS preset's survival bonus)."""
    progress_weight: float = 1.0
    """Weight of the dense distance reward ``(d_t - d_{t+1}) / dt``: the speed toward the
    goal, m/s."""
    sac_updates_per_step: float = 0.5
    """SAC updates per collected policy step (the DADS preset's ratio)."""
    batch_size: int = 256
    """Minibatch size of the SAC updates."""
    replay_capacity: int = 400_000
    """Replay size (the whole run at the default budget)."""
    sac: SACConfig = field(
        default_factory=lambda: SACConfig(initial_alpha=0.1, learn_alpha=False, hidden=(128, 128))
    )
    """SAC hyperparameters: (128, 128) networks, lr 3e-4 and a fixed entropy weight 0.1, as
    the DADS preset."""
    seed: int = 0
    """Seed of everything (goals, environments, networks)."""
    checkpoint_every: int = 10
    """Iterations between checkpoints."""
    env_workers: int = 0
    """Workers stepping groups of the environments beside the trainer's own group."""
    env_worker_backend: str = "processes"
    """Where the workers run: ``processes`` on this machine, or ``ray`` (Ray actors, one CPU
    each, on the running Ray instance or cluster)."""
    torch_threads: int = 1
    """torch intra-op threads of the training updates (BLAS runs with one)."""
    eval_episodes: int = 8
    """Goals the packaged policy is evaluated on (deterministic actions) for the manifest."""

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        checks = [
            (self.steps >= 1, "steps must be >= 1"),
            (self.num_envs >= 1, "num_envs must be >= 1"),
            (self.episode_length >= 1, "episode_length must be >= 1"),
            (self.success_radius > 0, "success_radius must be > 0"),
            (len(self.xy_dims) == 2, "xy_dims must name two entries"),
            (self.healthy_reward >= 0, "healthy_reward must be >= 0"),
            (self.progress_weight > 0, "progress_weight must be > 0"),
            (self.sac_updates_per_step > 0, "sac_updates_per_step must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.replay_capacity >= 1, "replay_capacity must be >= 1"),
            (self.checkpoint_every >= 1, "checkpoint_every must be >= 1"),
            (0 <= self.env_workers < self.num_envs, "env_workers must be in [0, num_envs)"),
            (
                self.env_worker_backend in ("processes", "ray"),
                "env_worker_backend must be 'processes' or 'ray'",
            ),
            (self.torch_threads >= 1, "torch_threads must be >= 1"),
            (self.eval_episodes >= 0, "eval_episodes must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"GCSACConfig: {message}")

    def to_json(self) -> dict[str, Any]:
        """The config as nested plain values (as training manifests record it)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GCSACConfig:
        """The inverse of :meth:`to_json` (lists become the tuples the fields hold)."""
        data = dict(data)
        data["sac"] = SACConfig(**{**data["sac"], "hidden": tuple(data["sac"]["hidden"])})
        for key in ("policy_obs_dims", "xy_dims"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

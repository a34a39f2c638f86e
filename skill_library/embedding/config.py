"""Skill-embedding settings (torch-free: ``hrl train embedding`` reads its defaults from here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hrl_runtime.errors import ConfigError
from skill_library.sac.config import SACConfig


@dataclass(frozen=True)
class EmbeddingNetworkConfig:
    """Sizes of the skill-embedding networks."""

    policy_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of pi(a | s, z) and of the critics Q(s, a, z, task)."""
    inference_hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of the inference network q(z | window of states)."""
    dynamics_hidden: tuple[int, ...] = (128, 128)
    """Hidden widths of the skill dynamics (fingertip x-y after holding z)."""
    latent_extent: float = 1.0
    """Embedding means are ``latent_extent * tanh(.)``: they stay in [-extent, extent]^dz."""
    max_embedding_std: float = 0.5
    """Upper bound of the per-task embedding std (the entropy bonus pushes it up)."""
    min_embedding_std: float = 0.15
    """Lower bound of the per-task embedding std: without it the task embeddings collapse to
    points (std ~0.02) and the policy never learns the z between them."""


@dataclass(frozen=True)
class EmbeddingConfig:
    """Everything a skill-embedding run needs; the defaults train the arm in ~25 min."""

    env_id: str = "hrl/ArmReach-v0"
    """Multi-task environment; it takes ``options={"task": k}`` at reset and has ``num_tasks``."""
    tasks: int = 8
    """T: training tasks (task ids 0..T-1)."""
    latent_dim: int = 2
    """dz: size of the skill embedding z."""
    steps: int = 128_000
    """Total control steps collected."""
    num_envs: int = 8
    """Environments stepped side by side, each one episode per iteration."""
    env_workers: int = 0
    """Workers stepping groups of the environments beside the trainer's own group."""
    env_worker_backend: str = "processes"
    """Where the workers run: ``processes`` on this machine, or ``ray`` (Ray actors, one CPU
    each, on the running Ray instance or cluster)."""
    episode_length: int = 100
    """Control steps per training episode (z ~ p(z | task) is held for the episode)."""
    random_start: float = 0.3
    """Share of training episodes started from uniformly random joint angles (the rest near
    home), so the skills work from wherever the planner leaves the arm."""
    window: int = 4
    """H: states in the window q(z | s_{t-H+2..t+1}) infers z from."""
    embedding_entropy_weight: float = 0.1
    """alpha_1: weight of the embedding entropy H[p(z | t)]."""
    embedding_repulsion_weight: float = 0.0
    """beta: weight of a repulsion between the task means (``losses.embedding_repulsion``; not
    part of the paper's objective, off by default). At 1.0 it kept every pair of means 0.48
    apart (without it two tasks' means met, 0.05 apart) and reached more training targets,
    but zero-shot following over the skill dynamics reached fewer goals (27 against 35 of 50 on
    fresh seeds), so the shipped ``embed-arm`` is trained without it."""
    embedding_repulsion_bandwidth: float = 0.25
    """h: the repulsion's kernel width in z; means ~2h or more apart hardly repel."""
    inference_weight: float = 0.05
    """alpha_2: weight of the inference log-likelihood log q(z | window) in the reward."""
    inference_floor: float = -10.0
    """log q below this is clipped in the reward (keeps early rewards bounded)."""
    updates_per_iteration: int = 300
    """SAC (critic, actor + embedding) and inference updates per iteration."""
    batch_size: int = 128
    """Minibatch size."""
    inference_lr: float = 3e-4
    """Adam step size of q(z | window)."""
    embedding_lr: float = 1e-3
    """Adam step size of the embedding p(z | t)."""
    replay_capacity: int = 300_000
    """Replay size, transitions."""
    warmup_steps: int = 4_000
    """Control steps collected with uniform random actions before learning starts."""
    hold_steps: int = 10
    """Control steps a command z is held by the planner; the skill dynamics predicts this far."""
    dynamics_segments: int = 40_000
    """Held-z segments collected with the final policy to fit the skill dynamics."""
    dynamics_updates: int = 15_000
    """Adam steps of the skill dynamics."""
    dynamics_lr: float = 1e-3
    """Adam step size of the skill dynamics."""
    sac: SACConfig = field(
        default_factory=lambda: SACConfig(
            hidden=(128, 128), learning_rate=1e-3, initial_alpha=0.1, discount=0.95
        )
    )
    """SAC hyperparameters (the policy entropy weight alpha is tuned to the target entropy)."""
    networks: EmbeddingNetworkConfig = field(default_factory=EmbeddingNetworkConfig)
    """Network sizes."""
    seed: int = 0
    """Seed of everything."""
    checkpoint_every: int = 25
    """Iterations between checkpoints."""
    torch_threads: int = 1
    """torch intra-op threads of the updates."""

    def validate(self) -> None:
        """Raises ConfigError naming the first bad field."""
        checks = [
            (self.tasks >= 1, "tasks must be >= 1"),
            (self.latent_dim >= 1, "latent_dim must be >= 1"),
            (self.steps >= 1, "steps must be >= 1"),
            (self.num_envs >= 1, "num_envs must be >= 1"),
            (0 <= self.env_workers < self.num_envs, "env_workers must be in [0, num_envs)"),
            (
                self.env_worker_backend in ("processes", "ray"),
                "env_worker_backend must be 'processes' or 'ray'",
            ),
            (self.episode_length >= 2, "episode_length must be >= 2"),
            (0.0 <= self.random_start <= 1.0, "random_start must be in [0, 1]"),
            (self.window >= 1, "window must be >= 1"),
            (self.embedding_entropy_weight >= 0, "embedding_entropy_weight must be >= 0"),
            (self.embedding_repulsion_weight >= 0, "embedding_repulsion_weight must be >= 0"),
            (
                self.embedding_repulsion_bandwidth > 0,
                "embedding_repulsion_bandwidth must be > 0",
            ),
            (self.inference_weight >= 0, "inference_weight must be >= 0"),
            (self.updates_per_iteration >= 0, "updates_per_iteration must be >= 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.hold_steps >= 1, "hold_steps must be >= 1"),
            (self.dynamics_segments >= 1, "dynamics_segments must be >= 1"),
            (self.dynamics_updates >= 1, "dynamics_updates must be >= 1"),
            (self.torch_threads >= 1, "torch_threads must be >= 1"),
            (self.networks.latent_extent > 0, "networks.latent_extent must be > 0"),
            (
                0 < self.networks.min_embedding_std <= self.networks.max_embedding_std,
                "networks.min_embedding_std must be in (0, networks.max_embedding_std]",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"EmbeddingConfig: {message}")

    def to_json(self) -> dict[str, Any]:
        """The config as nested plain values (as training manifests record it)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmbeddingConfig:
        """The inverse of :meth:`to_json` (lists become the tuples the fields hold)."""
        data = dict(data)
        data["sac"] = SACConfig(**{**data["sac"], "hidden": tuple(data["sac"]["hidden"])})
        nets = dict(data["networks"])
        for key in ("policy_hidden", "inference_hidden", "dynamics_hidden"):
            nets[key] = tuple(nets[key])
        data["networks"] = EmbeddingNetworkConfig(**nets)
        return cls(**data)

"""SPiRL training: the skill model from offline data, and the prior-regularized high-level policy.

This module is the only place in ``spirl/`` that steps an optimizer: :func:`train_skill_model`
fits the skill model, and :class:`HighLevelLearner` takes the high-level policy's update steps for
:class:`~skill_library.spirl.downstream.SPiRLTrainer`.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.spaces import Box

from hrl_runtime.errors import ConfigError
from skill_library.run import TrainingRun
from skill_library.sac.losses import soft_update
from skill_library.sac.networks import TanhGaussianPolicy, TwinQ
from skill_library.spirl.config import SkillTrainingConfig, SPiRLConfig
from skill_library.spirl.losses import (
    skill_model_loss,
    spirl_actor_loss,
    spirl_critic_loss,
    spirl_temperature_loss,
)
from skill_library.spirl.networks import SkillModel
from skill_library.spirl.skill import SPiRLSkill

logger = logging.getLogger(__name__)

VALIDATE_EVERY = 100
"""Updates between validation losses (each one is a history entry and TensorBoard point)."""

Windows = dict[str, torch.Tensor]
"""H-step windows of a dataset: ``actions (N, H, da)`` and ``states (N, H, do)``."""


def train_skill_model(
    dataset: Any,
    config: SkillTrainingConfig,
    out_dir: Path,
    *,
    name: str = "spirl-skills",
    version: str = "1.0.0",
    command: str = "",
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Trains encoder, decoder and prior on the dataset's H-step windows; writes the package.

    Args:
        dataset: an ``envs.TrajectoryDataset``.
        config: training settings.
        out_dir: package directory (checkpoints and TensorBoard scalars inside).
        name: package name.
        version: package version.
        command: the command line, for the manifest (by default this process's arguments).
        resume: continue from ``out_dir/checkpoint`` if present (only ``updates`` may differ
            from the checkpoint's configuration).
        progress: show a progress bar.

    Raises:
        ConfigError: a dataset without an episode of H steps, or a checkpoint made with another
            configuration.
    """
    config.validate()
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    train, validation = split_windows(dataset, config, rng)
    model = SkillModel(dataset.obs_dim, dataset.action_dim, config.model)
    learner = _SkillModelLearner(model, config, rng)
    run = TrainingRun(
        config,
        out_dir,
        tag="spirl_skills",
        budget="updates",
        unit="update",
        command=command,
        progress=progress,
        version=version,
    )
    state = run.resume() if resume else None
    if state is not None:
        learner.restore(state)
    with run.session(done=learner.step):
        _fit(learner, train, validation, config, run)
    run.save(learner.state())
    return _package(run, learner, dataset, name)


def split_windows(
    dataset: Any, config: SkillTrainingConfig, rng: np.random.Generator
) -> tuple[Windows, Windows]:
    """The dataset's H-step windows, split by episode into training and validation windows.

    Args:
        dataset: an ``envs.TrajectoryDataset``.
        config: H and the share of episodes held out for validation.
        rng: draws the held-out episodes.

    Returns:
        The training and the validation :data:`Windows`.

    Raises:
        ConfigError: no episode has H steps.
    """
    H = config.model.horizon
    episodes = rng.permutation(dataset.num_episodes)
    held_out = episodes[: max(1, int(config.validation_fraction * dataset.num_episodes))]
    _, actions, obs_seq = dataset.action_sequences(H)
    if len(actions) == 0:
        raise ConfigError(f"the dataset has no episode of at least H={H} steps")
    window_episode = np.repeat(
        np.arange(dataset.num_episodes), np.maximum(dataset.episode_lengths - H + 1, 0)
    )
    is_val = np.isin(window_episode, held_out.tolist())
    train = {"actions": actions[~is_val], "states": obs_seq[~is_val, :H]}
    validation = {"actions": actions[is_val], "states": obs_seq[is_val, :H]}
    return (
        {k: torch.from_numpy(v) for k, v in train.items()},
        {k: torch.from_numpy(v) for k, v in validation.items()},
    )


class _SkillModelLearner:
    """The skill model with its optimizer, random streams and update count: what a checkpoint
    restores. ``rng`` draws the batches; a torch generator the posterior samples."""

    def __init__(self, model: SkillModel, config: SkillTrainingConfig, rng: np.random.Generator):
        self.model, self.config, self.rng = model, config, rng
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0

    def update(self, train: Windows) -> dict[str, float]:
        """One Adam step of :func:`skill_model_loss` on a random batch of ``train``."""
        index = torch.from_numpy(
            self.rng.integers(0, len(train["actions"]), self.config.batch_size)
        )
        batch = {k: v[index] for k, v in train.items()}
        loss, metrics = skill_model_loss(self.model, batch, self.config.beta, self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return metrics

    def validate(self, validation: Windows) -> dict[str, float]:
        """The loss terms on the validation windows, named ``val_<term>``."""
        with torch.no_grad():
            _, metrics = skill_model_loss(self.model, validation, self.config.beta, self.generator)
        return {f"val_{k}": v for k, v in metrics.items()}

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "rng": self.rng.bit_generator.state,
            "step": self.step,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["rng"]
        self.step = int(state["step"])


def _fit(
    learner: _SkillModelLearner,
    train: Windows,
    validation: Windows,
    config: SkillTrainingConfig,
    run: TrainingRun,
) -> None:
    """Updates to ``config.updates``, validating every :data:`VALIDATE_EVERY` and at the end."""
    while learner.step < config.updates:
        metrics = learner.update(train)
        postfix = {}
        if learner.step % VALIDATE_EVERY == 0 or learner.step == config.updates:
            metrics.update(learner.validate(validation))
            metrics["step"] = learner.step
            run.log(learner.step, metrics)
            postfix = {
                "rec": f"{metrics['val_reconstruction']:.3f}",
                "prior": f"{metrics['val_prior_loss']:.2f}",
            }
        run.advance(1, **postfix)
        if learner.step % config.checkpoint_every == 0:
            run.save(learner.state())


def _package(run: TrainingRun, learner: _SkillModelLearner, dataset: Any, name: str) -> Path:
    """The skill model as a :class:`SPiRLSkill` package in the run's directory."""
    config = learner.config
    obs_space = Box(-np.inf, np.inf, shape=(dataset.obs_dim,), dtype=np.float32)
    action_space = Box(-1.0, 1.0, shape=(dataset.action_dim,), dtype=np.float32)
    model = copy.deepcopy(learner.model).eval()
    skill = SPiRLSkill(model, obs_space, action_space, dataset.action_repeat, config.command_bound)
    return run.package(
        skill,
        name=name,
        description=(
            f"SPiRL skills (H={config.model.horizon}, dz={config.model.latent_dim}, "
            f"{'closed' if config.model.closed_loop else 'open'}-loop decoder) with a learned "
            f"state-conditioned prior, from {dataset.num_episodes} episodes on {dataset.env_id}"
        ),
        training={
            "dataset": {
                "env_id": dataset.env_id,
                "episodes": dataset.num_episodes,
                "steps": dataset.num_steps,
            },
        },
        metrics={
            "updates": learner.step,
            "wall_seconds_this_session": round(run.seconds, 1),
            **{k: v for k, v in run.history[-1].items() if k.startswith("val_")},
        },
    )


class HighLevelLearner:
    """The high-level policy over commands, its twin critics and temperature, with their
    optimizers (Pertsch et al. 2020, Algorithm 1 lines 9-13).

    Args:
        obs_dim: do.
        command_dim: dz (da for flat SAC).
        bound: commands lie in ``[-bound, bound]^dz``.
        prior: the skill prior network, ``obs (B, do) -> mean, log_std (B, dz)``; the policy's
            divergence is KL(pi || prior). None: ``log pi`` (SAC's entropy term).
        target: delta, the target of the divergence (for the entropy: minus the target entropy).
        config: widths, step size, discount, Polyak factor, initial temperature, seed.
    """

    def __init__(
        self,
        obs_dim: int,
        command_dim: int,
        bound: float,
        prior: torch.nn.Module | None,
        target: float,
        config: SPiRLConfig,
    ):
        self.config, self.bound, self.prior, self.target = config, bound, prior, target
        self.policy = TanhGaussianPolicy(obs_dim, command_dim, config.hidden)
        self.critic = TwinQ(obs_dim, command_dim, config.hidden)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(config.initial_alpha), requires_grad=True)
        lr = config.learning_rate
        self.optimizers = {
            "policy": torch.optim.Adam(self.policy.parameters(), lr=lr),
            "critic": torch.optim.Adam(self.critic.parameters(), lr=lr),
            "alpha": torch.optim.Adam([self.log_alpha], lr=lr),
        }
        self.generator = torch.Generator().manual_seed(config.seed)
        """Noise of the policy's samples (exploration and the losses)."""

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One critic, actor and temperature step on ``batch`` (:mod:`~skill_library.sac.losses`
        layout, ``actions`` being commands); returns the metrics."""
        alpha = self.log_alpha.detach().exp()
        loss, metrics = spirl_critic_loss(
            self.critic, self.target_critic, self.policy, self.prior, batch, alpha,
            self.config.discount, self.bound, self.generator,
        )  # fmt: skip
        self._step("critic", loss)
        self.critic.requires_grad_(False)
        loss, divergence, actor_metrics = spirl_actor_loss(
            self.policy, self.critic, self.prior, batch, alpha, self.bound, self.generator
        )
        self._step("policy", loss)
        self.critic.requires_grad_(True)
        loss, alpha_metrics = spirl_temperature_loss(self.log_alpha, divergence, self.target)
        self._step("alpha", loss)
        soft_update(self.target_critic, self.critic, self.config.tau)
        return {**metrics, **actor_metrics, **alpha_metrics}

    def _step(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

"""SPiRL training: the skill model from offline data, and the prior-regularized high-level policy.

This module is the only place in ``spirl/`` that steps an optimizer.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrl_runtime.errors import ConfigError
from skill_library.spirl.config import SkillTrainingConfig
from skill_library.spirl.losses import skill_model_loss
from skill_library.spirl.networks import SkillModel
from skill_library.spirl.skill import SPiRLSkill

logger = logging.getLogger(__name__)


def train_skill_model(
    dataset: Any,
    config: SkillTrainingConfig,
    out_dir: Path,
    *,
    name: str = "spirl-skills",
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
        command: the command line, for the manifest.
        resume: continue from ``out_dir/checkpoint`` if present.
        progress: show a progress bar.
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from hrl_runtime.registry import SkillRegistry
    from skill_library.checkpoint import config_json, load_resumable, save_checkpoint

    H = config.model.horizon
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    episodes = rng.permutation(dataset.num_episodes)
    held_out = set(
        episodes[: max(1, int(config.validation_fraction * dataset.num_episodes))].tolist()
    )
    _, actions, obs_seq = dataset.action_sequences(H)
    if len(actions) == 0:
        raise ConfigError(f"the dataset has no episode of at least H={H} steps")
    window_episode = np.repeat(
        np.arange(dataset.num_episodes), np.maximum(dataset.episode_lengths - H + 1, 0)
    )
    is_val = np.isin(window_episode, list(held_out))
    train = {
        "actions": torch.from_numpy(actions[~is_val]),
        "states": torch.from_numpy(obs_seq[~is_val, :H]),
    }
    val = {
        "actions": torch.from_numpy(actions[is_val]),
        "states": torch.from_numpy(obs_seq[is_val, :H]),
    }

    model = SkillModel(dataset.obs_dim, dataset.action_dim, config.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    out_dir = Path(out_dir)
    checkpoint = out_dir / "checkpoint"
    step, history = 0, []
    state = load_resumable(checkpoint, config) if resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        rng.bit_generator.state = state["rng"]
        step, history = int(state["step"]), list(state["history"])
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=step)
    started = time.perf_counter()

    def save() -> None:
        save_checkpoint(
            checkpoint,
            {
                "config": config_json(config),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
                "rng": rng.bit_generator.state,
                "step": step,
                "history": history,
            },
        )

    bar = tqdm(total=config.updates, initial=step, disable=not progress, unit="update")
    size = len(train["actions"])
    while step < config.updates:
        index = torch.from_numpy(rng.integers(0, size, config.batch_size))
        loss, metrics = skill_model_loss(
            model, {k: v[index] for k, v in train.items()}, config.beta, generator
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 100 == 0 or step == config.updates:
            with torch.no_grad():
                _, val_metrics = skill_model_loss(model, val, config.beta, generator)
            metrics.update({f"val_{k}": v for k, v in val_metrics.items()})
            metrics["step"] = step
            history.append(metrics)
            for key, value in metrics.items():
                writer.add_scalar(f"spirl_skills/{key}", value, step)
            bar.set_postfix(
                rec=f"{metrics['val_reconstruction']:.3f}", prior=f"{metrics['val_prior_loss']:.2f}"
            )
        bar.update(1)
        if step % config.checkpoint_every == 0:
            save()
    bar.close()
    writer.close()
    save()
    skill = SPiRLSkill(
        copy.deepcopy(model).eval(),
        _observation_space(dataset),
        _action_space(dataset),
        dataset.action_repeat,
        config.command_bound,
    )
    last = history[-1]
    return SkillRegistry([out_dir.parent]).save(
        skill,
        out_dir,
        name=name,
        description=(
            f"SPiRL skills (H={H}, dz={config.model.latent_dim}, "
            f"{'closed' if config.model.closed_loop else 'open'}-loop decoder) with a learned "
            f"state-conditioned prior, from {dataset.num_episodes} episodes on {dataset.env_id}"
        ),
        training={
            "command": command,
            "seed": config.seed,
            "config": config_json(config),
            "dataset": {
                "env_id": dataset.env_id,
                "episodes": dataset.num_episodes,
                "steps": dataset.num_steps,
            },
        },
        metrics={
            "updates": step,
            "wall_seconds_this_session": round(time.perf_counter() - started, 1),
            **{k: v for k, v in last.items() if k.startswith("val_")},
        },
        overwrite=True,
    )


def _observation_space(dataset: Any):
    from gymnasium.spaces import Box

    return Box(-np.inf, np.inf, shape=(dataset.obs_dim,), dtype=np.float32)


def _action_space(dataset: Any):
    from gymnasium.spaces import Box

    return Box(-1.0, 1.0, shape=(dataset.action_dim,), dtype=np.float32)

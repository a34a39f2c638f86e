"""Scripted data collection fanned out over a backend: ``hrl collect --shards N``.

The episodes are split into ``N`` shards, each collected by one trial (a process on this
machine, or a Ray task) with its own seed drawn from the run's seed, written to its own HDF5 file
and merged in shard order. The same seed and shard count give the same dataset on either
backend; it differs from the one-process collection of the same seed (``--shards 1``), whose
episodes share one random stream. On a cluster the shard files go next to ``--out``, which
must be on a file system every node sees.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from hrl_runtime.experiments.backends import BackendConfig, run_all
from hrl_runtime.experiments.trials import Trial

logger = logging.getLogger(__name__)


def shard_plan(episodes: int, seed: int, shards: int) -> list[tuple[int, int]]:
    """``(episodes, seed)`` of every shard: the episodes split as evenly as possible (the first
    shards take one more), the seeds spawned from ``seed`` (numpy's ``SeedSequence``).

    Raises:
        ValueError: fewer episodes than shards.
    """
    if not 1 <= shards <= episodes:
        raise ValueError(f"--shards {shards} must be between 1 and --episodes {episodes}")
    sizes = [len(part) for part in np.array_split(np.arange(episodes), shards)]
    children = np.random.SeedSequence(seed).spawn(shards)
    seeds = [int(child.generate_state(1, np.uint32)[0]) for child in children]
    return list(zip(sizes, seeds, strict=True))


def collect_shard(config: dict[str, Any], path: str) -> dict[str, Any]:
    """One shard: :func:`envs.collect_dataset` with ``config``, saved to ``path``."""
    import envs

    dataset = envs.collect_dataset(envs.CollectConfig(**config), progress=False)
    dataset.save(path)
    return {"path": path, "episodes": dataset.num_episodes, "steps": dataset.num_steps}


def collect_sharded(
    config: Any,
    shards: int,
    backend: BackendConfig,
    out: Path,
    progress: bool = False,
    created_by: str = "",
) -> Any:
    """Collects ``config.episodes`` episodes in ``shards`` trials on ``backend`` and merges them.

    Args:
        config: an :class:`envs.CollectConfig` (its ``seed`` seeds the shards).
        shards: trials to split the episodes into.
        backend: where the trials run.
        out: the dataset file the caller will write (the shards go to ``OUT.shards/``, removed
            after the merge).
        progress: show a progress bar over shards.
        created_by: recorded in the merged dataset.

    Returns:
        The merged :class:`envs.TrajectoryDataset`.

    Raises:
        TrialsFailed: a shard failed on every attempt.
    """
    from envs.datasets import TrajectoryDataset, load_dataset

    plan = shard_plan(config.episodes, config.seed, shards)
    work = out.with_name(out.name + ".shards")
    work.mkdir(parents=True, exist_ok=True)
    trials = [
        Trial(
            f"{__name__}:collect_shard",
            {
                "config": asdict(replace(config, episodes=episodes, seed=seed)),
                "path": str(work / f"shard-{index:04d}.h5"),
            },
            name=f"collect shard {index} ({episodes} episodes, seed {seed})",
        )
        for index, (episodes, seed) in enumerate(plan)
    ]
    results = run_all(trials, backend, progress)
    parts = [load_dataset(result["path"], env_id=config.env_id) for result in results]
    shutil.rmtree(work, ignore_errors=True)
    logger.info("merged %d shards: %d episodes", shards, sum(p.num_episodes for p in parts))
    return TrajectoryDataset(
        observations=np.concatenate([part.observations for part in parts]),
        actions=np.concatenate([part.actions for part in parts]),
        episode_lengths=np.concatenate([part.episode_lengths for part in parts]),
        goals=np.concatenate([part.goals for part in parts]),
        env_id=config.env_id,
        action_repeat=config.action_repeat,
        seed=config.seed,
        collector={**asdict(config), "shards": shards, "shard_seeds": [s for _, s in plan]},
        created_by=created_by or f"{__name__}.collect_sharded",
    )

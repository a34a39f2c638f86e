"""`hrl collect --shards N`: the episodes split over trials, each with its own seed, merged in
shard order into the dataset one process would make shard by shard."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import envs
from hrl_runtime.cli import main
from hrl_runtime.experiments.collect_shards import shard_plan


def test_the_plan_splits_episodes_evenly_with_distinct_seeds():
    plan = shard_plan(10, 3, 4)
    assert [episodes for episodes, _ in plan] == [3, 3, 2, 2]
    assert len({seed for _, seed in plan}) == 4
    assert shard_plan(10, 3, 4) == plan  # the seeds follow from the run's seed
    assert shard_plan(10, 4, 4) != plan
    with pytest.raises(ValueError, match="between 1 and --episodes"):
        shard_plan(3, 0, 4)


def test_sharded_collection_merges_the_shards_in_order(tmp_path, capsys):
    out = tmp_path / "data.h5"
    status = main(["collect", "--episodes", "5", "--shards", "2", "--seed", "9", "--out",
                   str(out), "--json"])  # fmt: skip
    assert status == 0 and json.loads(capsys.readouterr().out)["episodes"] == 5
    merged = envs.load_dataset(out)
    assert not (tmp_path / "data.h5.shards").exists()
    parts = [
        envs.collect_dataset(replace(envs.CollectConfig(), episodes=n, seed=s), progress=False)
        for n, s in shard_plan(5, 9, 2)
    ]
    np.testing.assert_array_equal(
        merged.observations, np.concatenate([p.observations for p in parts])
    )
    np.testing.assert_array_equal(merged.actions, np.concatenate([p.actions for p in parts]))
    lengths = np.concatenate([p.episode_lengths for p in parts])
    np.testing.assert_array_equal(merged.episode_lengths, lengths)
    assert merged.collector["shards"] == 2 and merged.seed == 9

"""``hrl compare ant`` on tiny packages: DADS + latent MPPI at the default horizon and at T=1
and the goal-conditioned SAC baseline follow the same goals; the CSV, markdown table and JSON
hold a row per seed and method."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
from test_dads_ant import tiny_ant_config  # the tiny DADS-on-Ant recipe of the DADS tests
from test_gcsac import train_tiny_gcsac

import envs
from hrl_runtime.cli import main
from hrl_runtime.experiments.ant_compare import METHODS


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    from skill_library.dads.train import DADSTrainer

    root = tmp_path_factory.mktemp("ant-compare")
    dads = DADSTrainer(replace(tiny_ant_config(), steps=40, env_workers=0), root / "tiny-ant")
    dads_path = dads.train(progress=False, name="tiny-ant")
    gcsac_path = train_tiny_gcsac(root / "tiny-gcsac")[0]
    return dads_path, gcsac_path


def test_compare_ant_runs_every_method_on_the_same_goals(packages, tmp_path, capsys):
    dads, gcsac = packages
    out = tmp_path / "out"
    argv = ["compare", "ant", "--skill", str(dads), "--baseline", str(gcsac), "--seeds", "4"]
    argv += ["--random-goals", "1", "--max-steps", "12", "--sync", "--out", str(out), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)  # exactly one JSON object
    runs = {row["method"]: row for row in payload["runs"]}
    assert list(runs) == list(METHODS)
    assert runs["dads-mppi"]["horizon"] == 10 and runs["dads-mppi-t1"]["horizon"] == 1
    assert runs["gcsac"]["planner"] == "sequence" and runs["gcsac"]["horizon"] is None
    # the goals `hrl follow --random-goals 1 --seed 4` samples, the same for every method
    env = envs.make_env("Ant-v5", max_episode_steps=10)
    expected = envs.goal_space(env).sample(np.random.default_rng(4), 1)
    env.close()
    for row in runs.values():
        np.testing.assert_allclose(row["goal_xy"], expected)
        assert row["goals"] == 1 and row["reached"] + (1 - row["reached"]) == 1
        assert row["success_rate"] == row["reached"] / row["goals"]
        assert row["success_radius"] == 1.0 and row["steps_per_goal"] == 12
        assert row["falls"] in (0, 1) and row["faults"] == 0
    assert runs["dads-mppi"]["goal_xy"] == runs["dads-mppi-t1"]["goal_xy"]
    assert runs["dads-mppi"]["planner_p99_ms"] > 0 and runs["dads-mppi-t1"]["planner_p99_ms"] > 0

    with open(out / "ant_compare.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == list(METHODS) and {r["seed"] for r in rows} == {"4"}
    assert [int(r["reached"]) for r in rows] == [runs[m]["reached"] for m in METHODS]
    table = (out / "ant_compare.md").read_text().strip().splitlines()
    assert len(table) == 2 + len(METHODS)
    assert "T=10" in table[2] and "T=1, greedy" in table[3] and "goal-conditioned SAC" in table[4]
    assert [row["method"] for row in payload["table"]] == list(METHODS)
    assert json.loads((out / "ant_compare.json").read_text())["runs"] == payload["runs"]


def test_compare_ant_refuses_mismatched_skills_before_running(packages, tmp_path, capsys):
    dads, gcsac = packages
    out = tmp_path / "out"
    # a latent-commanded DADS skill cannot be the goal-commanded baseline, nor the reverse
    for skill, baseline, needle in ((dads, dads, "sequence"), (gcsac, gcsac, "mppi")):
        argv = ["compare", "ant", "--skill", str(skill), "--baseline", str(baseline)]
        assert main([*argv, "--seeds", "1", "--random-goals", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err
    assert not out.exists()  # refused before any run wrote anything
    assert main(["compare", "ant", "--seeds", "1,x", "--out", str(out)]) == 2
    assert "--seeds" in capsys.readouterr().err

"""The shipped embed-arm skill: its tasks at their embedding means, zero-shot goal following with
latent MPPI in the asynchronous loop, and a task file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs.arm import TARGETS
from hrl_runtime import SkillRegistry
from hrl_runtime.cli import main as hrl_main
from skill_library.embedding.evaluation import evaluate_tasks


@pytest.fixture(scope="module")
def embed_arm():
    return SkillRegistry().load("embed-arm")


def test_embed_arm_recommends_the_planner_settings_it_was_measured_with(embed_arm):
    # 2.1.0: the 2.0.0 weights; three MPPI refinements at a sharp temperature (README)
    assert embed_arm.version == "2.1.0"
    assert embed_arm.planner_settings("mppi") == {"iterations": 3, "temperature": 0.01}


def test_embed_arm_does_its_training_tasks_at_their_embedding_means(embed_arm):
    tasks = embed_arm.config.tasks
    assert embed_arm.kind == "embedding" and embed_arm.embedding_means.shape == (tasks, 2)
    assert np.all(embed_arm.embedding_stds >= 0.15 - 1e-6)  # the floor: no collapsed task
    result = evaluate_tasks(embed_arm, "hrl/ArmReach-v0", seed=123)
    # measured on the shipped package (2.0.0): 4 of 8 within 0.1 m, 5 of 8 within 0.15 m
    # (task 5 ends 0.59 m off); an untrained policy ends ~1 m away
    distances = np.array(result["task_final_distances"])
    assert (distances <= 0.15).sum() >= 5, distances
    assert len(TARGETS) >= tasks
    # distinct tasks have distinct embeddings, except one pair: tasks 4 and 5 (0.55 m at 180
    # degrees, 0.95 m at 225) share nearly one embedding (0.05 apart) in the shipped package
    gaps = np.linalg.norm(embed_arm.embedding_means[:, None] - embed_arm.embedding_means, axis=-1)
    close_pairs = int((gaps[np.triu_indices(tasks, 1)] < 0.1).sum())
    assert close_pairs <= 1, gaps


def test_mppi_reaches_goals_between_the_trained_targets_in_the_async_loop(capsys):
    # between targets 0 and 1, and between 6 and 7: never training targets (the shipped 2.0.0
    # reaches the point between 4 and 5, where its tasks 4 and 5 share one embedding, in some
    # runs only)
    goals = [0.75 * np.array([np.cos(a), np.sin(a)]) for a in (np.pi / 8, 13 * np.pi / 8)]
    assert min(np.linalg.norm(TARGETS - g, axis=1).min() for g in goals) > 0.2
    text = ";".join(f"{x:.3f},{y:.3f}" for x, y in goals)
    argv = ["follow", "--skill", "embed-arm", "--planner", "mppi", "--env", "hrl/ArmReach-v0"]
    status = hrl_main([*argv, "--goals", text, "--seed", "21", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [g["reached"] for g in report["goals"]] == [True, True], report["goals"]
    assert all(g["final_distance"] <= 0.1 for g in report["goals"])


def test_a_task_file_runs_embed_arm_with_mppi(tmp_path, capsys):
    task = tmp_path / "arm.toml"
    task.write_text(
        '[task]\nname = "arm-reach"\nenv = "hrl/ArmReach-v0"\nseed = 4\n'
        '[defaults]\nskill = "embed-arm"\nhigh_level = "mppi"\nradius = 0.1\ntimeout_s = 4.0\n'
        '[[steps]]\nid = "up"\ngoal = [-0.2, 0.75]\n'
        '[[steps]]\nid = "down-right"\ngoal = [0.6, -0.55]\nnext = "end"\n'
    )
    status = hrl_main(["run", str(task), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["success"], report
    assert [s["outcome"] for s in report["steps"]] == ["reached", "reached"]

"""The hrl CLI: one JSON object with --json, one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hrl_runtime.cli import main


def run_cli(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys, *argv):
    status, out, err = run_cli(capsys, *argv, "--json")
    assert status == 0, err
    return json.loads(out)  # exactly one object: json.loads refuses trailing text


def test_follow_reaches_every_random_goal_in_the_arena(capsys):
    report = run_json(
        capsys, "follow", "--skill", "scripted-reach", "--env", "hrl/PointArena-v0",
        "--random-goals", "10", "--seed", "123", "--sync",
    )  # fmt: skip
    assert report["mode"] == "sync"
    assert len(report["goals"]) == 10
    assert all(goal["reached"] for goal in report["goals"])
    assert report["success_rate"] == 1.0
    for goal in report["goals"]:
        assert set(goal) >= {"goal", "reached", "final_distance", "steps"}
        assert goal["final_distance"] <= 0.5
    for key in ("control_latency_ms", "planner_latency_ms"):
        assert set(report[key]) >= {"p50", "p99", "max"}
    assert report["control_period_ms"] == pytest.approx(10.0)
    assert report["faults"] == 0
    assert isinstance(report["deadline_misses"], int)


def test_follow_explicit_goals_writes_a_plot(capsys, tmp_path):
    plot = tmp_path / "run.png"
    report = run_json(
        capsys, "follow", "--skill", "scripted-reach", "--env", "hrl/PointArena-v0",
        "--goals", "2,2;-3,1", "--plot", str(plot),
    )  # fmt: skip
    assert [g["goal"] for g in report["goals"]] == [[2.0, 2.0], [-3.0, 1.0]]
    assert report["success_rate"] == 1.0
    assert plot.stat().st_size > 10_000


def test_goals_may_start_with_a_minus_sign(capsys):
    report = run_json(
        capsys, "follow", "--skill", "scripted-reach", "--env", "hrl/PointArena-v0",
        "--goals", "-2,3;4,-1", "--sync",
    )  # fmt: skip
    assert [g["goal"] for g in report["goals"]] == [[-2.0, 3.0], [4.0, -1.0]]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--skill", "no-such-skill", "--env", "hrl/PointArena-v0", "--goals", "1,1"],
         "no package 'no-such-skill'"),
        (["--skill", "scripted-reach", "--env", "hrl/Nowhere-v0", "--goals", "1,1"],
         "hrl/Nowhere-v0"),
        (["--skill", "scripted-reach", "--env", "hrl/PointArena-v0", "--goals", "1;2"],
         "is not 'x,y'"),
        (["--skill", "scripted-reach", "--env", "hrl/PointArena-v0", "--goals", "1,1;40,2"],
         "goal 2 (40, 2) is not reachable"),
        (["--skill", "scripted-reach", "--env", "hrl/PointMaze-v0", "--goals", "0,0"],
         "wall"),
        (["--skill", "scripted-reach", "--env", "Ant-v5", "--goals", "1,1"],
         "reads observations of shape (4,)"),
        (["--skill", "scripted-reach", "--env", "hrl/PointArena-v0", "--random-goals", "0"],
         "argument --random-goals"),
        (["--skill", "dads-pointmass", "--env", "hrl/PointArena-v0", "--goals", "1,1"],
         "takes latent commands"),
        (["--skill", "scripted-reach", "--env", "hrl/PointArena-v0", "--goals", "1,1",
          "--planner", "warp"], "invalid choice: 'warp'"),
        (["--skill", "scripted-reach", "--env", "hrl/PointArena-v0", "--goals", "1,1",
          "--video", "out.avi"], "must end in .mp4 or .gif"),
    ],
)  # fmt: skip
def test_bad_input_gives_one_line_and_status_2(capsys, argv, message):
    status, out, err = run_cli(capsys, "follow", *argv)
    assert status == 2
    assert out == ""
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_skills_list_show_verify(capsys):
    listing = run_json(capsys, "skills", "list")
    names = {row["name"]: row for row in listing["skills"]}
    assert names["scripted-reach"]["components"]["dynamics"] is True
    shown = run_json(capsys, "skills", "show", "scripted-reach")
    assert shown["manifest"]["kind"] == "scripted_reach"
    verified = run_json(capsys, "skills", "verify", names["scripted-reach"]["path"])
    assert verified["ok"] and verified["name"] == "scripted-reach"


def test_verify_refuses_a_tampered_package(capsys, tmp_path):
    from hrl_runtime.registry import SkillRegistry

    path = SkillRegistry().resolve("scripted-reach").path
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in path.iterdir():
        copy.joinpath(file.name).write_bytes(file.read_bytes())
    data = bytearray(copy.joinpath("dynamics.safetensors").read_bytes())
    data[-1] ^= 0xFF
    copy.joinpath("dynamics.safetensors").write_bytes(bytes(data))
    status, _out, err = run_cli(capsys, "skills", "verify", str(copy))
    assert status == 2
    assert "dynamics.safetensors" in err and "SHA-256 mismatch" in err


def test_demo_follows_goals_zero_shot_with_dads_and_mppi(capsys, tmp_path):
    report = run_json(capsys, "demo", "--out", str(tmp_path), "--sync")
    assert report["skill"] == "dads-pointmass" and report["planner"] == "mppi"
    assert report["success_rate"] == 1.0
    assert report["planner_latency_ms"]["count"] > 50
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "demo.json").read_text())["success_rate"] == 1.0


def test_maze_demo_tours_the_maze(capsys, tmp_path):
    report = run_json(capsys, "demo", "--scenario", "maze", "--out", str(tmp_path), "--sync")
    assert report["skill"] == "scripted-reach" and report["success_rate"] == 1.0
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def test_follow_with_dads_skills_and_mppi(capsys):
    report = run_json(
        capsys, "follow", "--skill", "dads-pointmass", "--planner", "mppi",
        "--env", "hrl/PointArena-v0", "--random-goals", "3", "--seed", "5",
    )  # fmt: skip
    assert report["success_rate"] == 1.0
    assert all(g["normalized_distance"] < 1.0 for g in report["goals"])
    # By default the planner ran in its own thread beside the real-time loop, with the pools the
    # runtime set: one BLAS and torch thread, one planner thread fewer than the cores.
    assert report["mode"] == "async"
    assert report["plan_age_ms"]["count"] == report["steps"]
    threads = report["threads"]
    assert set(threads["blas"].values()) == {1} and threads["torch"] == 1
    assert threads["planner_numba"] == max(1, threads["cores"] - 1)


def test_train_dads_command_writes_a_loadable_package(capsys, tmp_path):
    from hrl_runtime.registry import load_package

    out = tmp_path / "tiny"
    report = run_json(
        capsys, "train", "dads", "--steps", "320", "--num-envs", "4", "--out", str(out),
        "--name", "tiny-dads",
    )  # fmt: skip
    assert report["metrics"]["steps"] == 360  # whole iterations of 4 envs x 30 steps
    skill = load_package(out)
    assert skill.name == "tiny-dads" and skill.dynamics is not None
    assert (out / "checkpoint" / "state.safetensors").exists()


def test_console_script_help():
    hrl = [sys.executable, "-m", "hrl_runtime.cli", "--help"]
    result = subprocess.run(hrl, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    for command in ("skills", "follow", "demo"):
        assert command in result.stdout


def test_the_readme_python_example_runs():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("## Quick start: the Python API", 1)[1].split("```python", 1)[1]
    code = block.split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["high_level"].summary()["success_rate"] == 1.0

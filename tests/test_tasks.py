"""Task files: validation names file, step and field; the shipped examples finish in `hrl run`."""

from __future__ import annotations

import json

import pytest

from hrl_runtime.cli import main as hrl_main
from hrl_runtime.errors import ConfigError
from hrl_runtime.taskfiles import load_task, shipped_tasks

VALID_STEP = (
    'skill = "scripted-reach"\nhigh_level = "sequence"\ngoal = [1.0, 0.0]\ntimeout_s = 2.0\n'
)


def test_shipped_examples_are_found_by_name_and_validate():
    shipped = shipped_tasks()
    assert {"arena-tour", "maze-waypoints", "maze-rooms"} <= set(shipped)
    arena = load_task("arena-tour")
    assert arena.env == "hrl/PointArena-v0" and len(arena.steps) >= 3
    assert {s.high_level for s in arena.steps} == {"mppi"}
    assert {s.skill for s in arena.steps} == {"dads-pointmass"}
    maze = load_task("maze-waypoints")
    assert maze.step("lower-corridor").on_fail == "lower-corridor"  # a small graph
    assert maze.step("settle-at-goal").stop == "duration"
    assert maze.steps[0].next == "next" and maze.steps[-1].next == "end"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[task]\n", "[task]: field 'env' must be an environment id"),
        ('[task]\nenv = "x"\n', "a task needs at least one [[steps]]"),
        ('[task]\nenv = "x"\nspeed = 3\n[[steps]]\n' + VALID_STEP, "unknown fields ['speed']"),
        (
            '[task]\nenv = "x"\n[[steps]]\n' + VALID_STEP.replace("goal =", "gaol ="),
            "steps[0] (id 'step1'): unknown fields ['gaol']",
        ),
        (
            '[task]\nenv = "x"\n[[steps]]\n'
            + VALID_STEP.replace("timeout_s = 2.0", "timeout_s = -1"),
            "steps[0] (id 'step1'): field 'timeout_s' must be > 0, got -1",
        ),
        (
            '[task]\nenv = "x"\n[[steps]]\n' + VALID_STEP.replace("[1.0, 0.0]", "[1.0]"),
            "field 'goal' must be [x, y] in metres, got [1.0]",
        ),
        (
            '[task]\nenv = "x"\n[[steps]]\n' + VALID_STEP.replace('"sequence"', '"teleport"'),
            "field 'high_level' must be one of ['sequence', 'mppi', 'spirl', 'chaining']",
        ),
        (
            '[task]\nenv = "x"\n[[steps]]\nid = "a"\nnext = "b"\n' + VALID_STEP,
            "steps[0] (id 'a'): field 'next' must be a step id or 'end', got 'b'",
        ),
        (
            '[task]\nenv = "x"\n[[steps]]\nid = "a"\n'
            + VALID_STEP
            + '[[steps]]\nid = "a"\n'
            + VALID_STEP,
            "duplicate step ids ['a']",
        ),
        (
            '[task]\nenv = "x"\n[[steps]]\n' + VALID_STEP + "mppi = { num_samples = 4 }\n",
            "field 'mppi' only applies to high_level 'mppi'",
        ),
        (
            '[task]\nenv = "x"\n[[steps]]\n'
            + VALID_STEP.replace('"sequence"', '"mppi"')
            + "mppi = { samples = 4 }\n",
            "field 'mppi' has unknown keys ['samples']",
        ),
        ('[task\nenv = "x"\n', "not valid TOML"),
    ],
)
def test_invalid_task_files_name_file_step_and_field(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_task(path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


@pytest.mark.parametrize("high_level", ["spirl", "chaining"])
def test_declared_high_levels_without_a_planner_report_not_available_yet(
    tmp_path, monkeypatch, high_level
):
    # Other modules add these planners; pretend this build offers only sequence and mppi.
    monkeypatch.setattr("planners.factory.PLANNERS", ("sequence", "mppi"))
    path = tmp_path / "later.toml"
    path.write_text(
        '[task]\nenv = "x"\n[[steps]]\n' + VALID_STEP.replace('"sequence"', f'"{high_level}"')
    )
    with pytest.raises(ConfigError) as error:
        load_task(path)
    message = str(error.value)
    assert str(path) in message and "steps[0] (id 'step1')" in message
    assert f"high_level {high_level!r} is not available yet" in message


def test_unreachable_goal_and_unknown_env_are_refused_before_running(tmp_path, capsys):
    path = tmp_path / "wall.toml"
    path.write_text(
        '[task]\nenv = "hrl/PointMaze-v0"\n[[steps]]\nid = "into-the-wall"\n'
        + VALID_STEP.replace("[1.0, 0.0]", "[0.0, 0.0]")
    )
    assert hrl_main(["run", str(path)]) == 2
    error = capsys.readouterr().err
    assert "steps[0] (id 'into-the-wall'): goal 1 (0, 0) is not reachable" in error
    path.write_text('[task]\nenv = "hrl/Nowhere-v0"\n[[steps]]\n' + VALID_STEP)
    assert hrl_main(["run", str(path)]) == 2
    assert "[task]: field 'env'" in capsys.readouterr().err


def _run_json(capsys, *argv) -> tuple[int, dict]:
    status = hrl_main(["run", *argv, "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_hrl_run_finishes_the_dads_arena_tour(capsys, tmp_path):
    status, report = _run_json(capsys, "arena-tour", "--plot", str(tmp_path / "arena.png"))
    assert status == 0 and report["success"] and report["reason"] == "end"
    assert report["path"] == ["north-east", "north-west", "south-west", "home"]
    for step in report["steps"]:
        assert step["reached"] and step["outcome"] == "reached"
        assert step["goals"][0]["final_distance"] <= 0.5
        assert step["faults"] == {"total": 0} and step["safe_stop"] is None
        assert step["planner_rate_hz"] > 0  # MPPI planned in its own thread
    assert (tmp_path / "arena.png").stat().st_size > 10_000


def test_hrl_run_finishes_the_maze_waypoints(capsys):
    status, report = _run_json(capsys, "maze-waypoints")
    assert status == 0 and report["success"], report
    reached = [g["reached"] for step in report["steps"] for g in step["goals"]]
    assert all(reached) and len(reached) >= 7
    assert report["steps"][-1]["outcome"] == "duration"
    assert report["faults"] == 0


def test_hrl_run_takes_am_maze_through_the_four_rooms_by_chaining(capsys):
    # The chaining planner runs in its own thread here, optimizing up to once per tick.
    status, report = _run_json(capsys, "maze-rooms")
    assert status == 0 and report["success"], report
    legs = [step["id"] for step in report["steps"] if step["outcome"] == "reached"]
    assert legs == ["bottom-left-room", "top-right-room", "bottom-right-room", "back-to-start"]
    assert report["faults"] == 0

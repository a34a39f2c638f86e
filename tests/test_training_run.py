"""The training-run helper: history and TensorBoard, checkpoints and resume, packaging; and the
trainers that use it are deterministic and resume exactly where they stopped."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from hrl_runtime.errors import ConfigError
from skill_library.run import TrainingRun


@dataclass(frozen=True)
class Config:
    steps: int = 10
    hidden: tuple[int, ...] = (4, 4)
    seed: int = 7


def test_log_keeps_history_and_writes_finite_scalars_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = TrainingRun(Config(), tmp_path, tag="toy", budget="steps", progress=False)
    with run.session():
        for step in range(1, 4):
            run.log(step, {"step": step, "loss": 1.0 / step, "q": float("nan")})
            run.advance(1, loss=f"{1.0 / step:.2f}")
    assert [m["loss"] for m in run.history] == [1.0, 0.5, 1.0 / 3]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert events.Tags()["scalars"] == ["toy/loss"]  # no NaN series, no step series
    assert [e.step for e in events.Scalars("toy/loss")] == [1, 2, 3]
    assert run.seconds >= 0.0


def test_checkpoint_round_trip_and_resume_refusals(tmp_path):
    run = TrainingRun(Config(), tmp_path, tag="toy", budget="steps", progress=False)
    assert run.resume() is None  # nothing to resume yet
    run.log(1, {"loss": 2.0})
    run.save({"step": 3, "weights": [1.0, 2.0]})
    stored = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert {k for k, _ in stored["__dict__"]} == {"config", "step", "weights", "history"}

    extended = TrainingRun(Config(steps=20), tmp_path, tag="toy", budget="steps")
    state = extended.resume()  # the budget may grow
    assert state["step"] == 3 and state["weights"] == [1.0, 2.0]
    assert extended.history == [{"loss": 2.0}]
    other = TrainingRun(Config(hidden=(8,)), tmp_path, tag="toy", budget="steps")
    with pytest.raises(ConfigError, match=r"hidden: \[4, 4\] in the checkpoint, \[8\] now"):
        other.resume()


def test_package_records_command_seed_config_and_metrics(reach_skill, tmp_path):
    from hrl_runtime.registry import load_package

    run = TrainingRun(Config(), tmp_path / "pkg", tag="toy", budget="steps", command="hrl x")
    path = run.package(
        reach_skill,
        name="toy-reach",
        description="a toy",
        metrics={"loss": 0.5},
        training={"dataset": {"episodes": 3}},
    )
    manifest = json.loads((path / "skill.json").read_text())
    assert manifest["training"] == {
        "command": "hrl x",
        "seed": 7,
        "config": {"steps": 10, "hidden": [4, 4], "seed": 7},
        "dataset": {"episodes": 3},
    }
    assert manifest["metrics"] == {"loss": 0.5} and manifest["description"] == "a toy"
    assert load_package(path).name == "toy-reach"
    assert run.package(reach_skill, name="toy-reach", description="", metrics={}) == path

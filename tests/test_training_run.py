"""The training-run helper: history and TensorBoard, checkpoints and resume, packaging; and the
trainers that use it are deterministic and resume exactly where they stopped."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

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


# --- the trainers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset():
    import envs

    return envs.collect_dataset(envs.CollectConfig(episodes=12, seed=5), progress=False)


def weights(path):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in path.glob("*.safetensors")}


def test_the_same_seed_trains_the_same_skill_model(dataset, tmp_path):
    from skill_library.spirl.config import SkillModelConfig, SkillTrainingConfig
    from skill_library.spirl.train import train_skill_model

    config = SkillTrainingConfig(
        model=SkillModelConfig(latent_dim=4, hidden=(32, 32)), updates=120, batch_size=64
    )
    paths = [
        train_skill_model(dataset, config, tmp_path / name, name=name, progress=False)
        for name in ("spirl-a", "spirl-b")
    ]
    assert weights(paths[0]) == weights(paths[1])
    other = train_skill_model(
        dataset, replace(config, seed=1), tmp_path / "spirl-c", name="spirl-c", progress=False
    )
    assert weights(other) != weights(paths[0])


def test_an_interrupted_actionable_run_resumes_to_the_same_weights(dataset, tmp_path):
    from skill_library.actionable.config import ActionableConfig
    from skill_library.actionable.train import train_actionable

    config = ActionableConfig(hidden=(32, 32), steps=60, batch_size=64, num_subgoals=10)
    straight = train_actionable(dataset, config, tmp_path / "a", name="am-a", progress=False)
    half = replace(config, steps=30, checkpoint_every=30)
    train_actionable(dataset, half, tmp_path / "b", name="am-b", progress=False)
    resumed = train_actionable(
        dataset, replace(half, steps=60), tmp_path / "b", name="am-b", resume=True, progress=False
    )
    assert weights(resumed) == weights(straight)
    manifest = json.loads((resumed / "skill.json").read_text())
    assert manifest["metrics"]["steps"] == 60

"""Every bad CLI argument and task-file value gets one clear refusal before any work: exit status
2, one line on stderr naming the option or field, no traceback, nothing created or replaced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hrl_runtime.cli import main

PRETRAINED = Path(__file__).resolve().parents[1] / "skill_library" / "pretrained"

ARENA = ["--skill", "scripted-reach", "--env", "hrl/PointArena-v0"]
FOLLOW = ["follow", *ARENA, "--random-goals", "2"]
VALID_STEP = (
    '[[steps]]\nskill = "scripted-reach"\nhigh_level = "sequence"\ngoal = [1.0, 0.0]\n'
    "timeout_s = 2.0\n"
)
TASK = '[task]\nenv = "hrl/PointArena-v0"\n'

# (argv with {tmp} for the test's directory, what the one line must name)
CASES = [
    # seeds
    ([*FOLLOW, "--seed", "-1"], "argument --seed"),
    (["demo", "--seed", "-1", "--out", "{tmp}/demo"], "argument --seed"),
    (["eval", "--policy", "spirl-maze-far", "--env", "hrl/PointMazeFar-v0", "--seed", "-1"],
     "argument --seed"),
    (["train", "dads", "--out", "{tmp}/o", "--seed", "4294967296"], "argument --seed"),
    (["compare", "spirl", "--seeds", "0", "-1", "--out", "{tmp}/c"], "argument --seeds"),
    # bounded sizes
    ([*FOLLOW, "--max-steps", "100000000000"], "argument --max-steps"),
    (["follow", *ARENA, "--random-goals", "100000000"], "argument --random-goals"),
    (["follow", *ARENA, "--random-goals", "10000", "--max-steps", "5000"], "--max-steps"),
    (["bench", "loop", "--steps", "10000000000"], "argument --steps"),
    (["bench", "--threads", "0"], "argument --threads"),
    ([*FOLLOW, "--threads", "0"], "argument --threads"),
    (["run", "arena-tour", "--threads", "0"], "argument --threads"),
    (["collect", "--episodes", "0", "--out", "{tmp}/d.h5"], "argument --episodes"),
    (["serve", "--port", "70000"], "argument --port"),
    (["serve", "--rate", "nan"], "argument --rate"),
    # finiteness and goals
    ([*FOLLOW, "--radius", "nan"], "argument --radius"),
    ([*FOLLOW, "--radius", "inf"], "argument --radius"),
    ([*FOLLOW, "--radius", "0"], "argument --radius"),
    (["follow", *ARENA, "--goals", "1e308,0"], "--goals"),
    (["follow", *ARENA, "--goals", "1,nan"], "--goals"),
    (["follow", *ARENA, "--goals", "1,inf"], "--goals"),
    (["follow", *ARENA, "--goals", "1,2,3"], "is not 'x,y'"),
    (["follow", *ARENA, "--goals", "40,2"], "outside the bounds"),
    ([*FOLLOW, "--planner", "warp"], "argument --planner"),
    # training options
    (["train", "spirl-skills", "--dataset", "{tmp}/x.h5", "--out", "{tmp}/o", "--horizon", "0"],
     "argument --horizon"),
    (["train", "spirl-skills", "--dataset", "{tmp}/x.h5", "--out", "{tmp}/o", "--updates", "0"],
     "argument --updates"),
    (["train", "spirl-skills", "--dataset", "{tmp}/x.h5", "--out", "{tmp}/o", "--latent-dim",
      "0"], "argument --latent-dim"),
    (["train", "spirl-skills", "--dataset", "{tmp}/x.h5", "--out", "{tmp}/o", "--beta", "nan"],
     "argument --beta"),
    (["train", "spirl", "--skill", "spirl-maze", "--env", "hrl/PointMazeFar-v0", "--out",
      "{tmp}/o", "--steps", "0"], "argument --steps"),
    (["train", "spirl", "--skill", "spirl-maze", "--env", "Ant-v5", "--out", "{tmp}/o"],
     "Ant-v5"),
    (["train", "dads", "--out", "{tmp}/o", "--latent-dim", "0"], "argument --latent-dim"),
    (["train", "dads", "--out", "{tmp}/o", "--steps", "0"], "argument --steps"),
    (["train", "am", "--dataset", "{tmp}/x.h5", "--out", "{tmp}/o", "--steps", "0"],
     "argument --steps"),
    # output paths, checked before any work
    ([*FOLLOW, "--plot", "/proc/x.png"], "--plot"),
    ([*FOLLOW, "--plot", "{tmp}/p.txt"], "--plot"),
    ([*FOLLOW, "--plot", "/etc/hostname/x.png"], "--plot"),
    ([*FOLLOW, "--plot", "{tmp}/plots.png"], "--plot"),  # a directory
    ([*FOLLOW, "--plot", "{tmp}/old.png"], "--force"),  # exists
    ([*FOLLOW, "--video", "{tmp}/x.avi"], "--video"),
    (["run", "arena-tour", "--plot", "{tmp}/p.txt"], "--plot"),
    (["demo", "--out", "{tmp}/precious.txt"], "--out"),
    (["demo", "--out", "/proc/demo"], "--out"),
    (["collect", "--episodes", "1", "--out", "{tmp}/plots.png"], "--out"),
    (["collect", "--episodes", "1", "--out", ""], "--out"),
    (["collect", "--episodes", "1", "--out", "{tmp}/precious.txt"], "--out"),
    (["collect", "--episodes", "1", "--out", "{tmp}/old.h5"], "--force"),
    (["train", "dads", "--out", "{tmp}/precious.txt"], "--out"),
    (["train", "dads", "--out", "{tmp}/package"], "--resume"),
    (["train", "spirl-skills", "--dataset", "{tmp}/x.h5", "--out", "{tmp}/package"], "--force"),
    (["train", "dads", "--out", "{tmp}/o", "--name", "../../evil"], "--name"),
    (["train", "dads", "--out", "{tmp}/o", "--version", "one"], "--version"),
    (["train", "dads", "--out", "{tmp}/o", "--name", "dads-pointmass"], "--version"),
    (["train", "am", "--dataset", "{tmp}/x.h5", "--out", "{tmp}/o", "--name", "am-maze"],
     "--version"),
    (["train", "spirl", "--skill", "spirl-maze", "--env", "hrl/PointMazeFar-v0", "--out",
      "{tmp}/o", "--name", "spirl-maze-far"], "--version"),
    # parse errors are one line too
    (["follow", "--env", "hrl/PointArena-v0"], "required"),
    (["frobnicate"], "invalid choice"),
    ([*FOLLOW, "--seed", "x" * 100_000], "argument --seed"),
]  # fmt: skip

TASKS = [
    ("seed = -1\n" + VALID_STEP, "field 'seed'"),
    ("seed = 1.5\n" + VALID_STEP, "field 'seed'"),
    ("control_rate_hz = 1e9\n" + VALID_STEP, "field 'control_rate_hz'"),
    ("control_rate_hz = nan\n" + VALID_STEP, "field 'control_rate_hz'"),
    (VALID_STEP.replace("timeout_s = 2.0", "timeout_s = 1e12"), "field 'timeout_s'"),
    ("max_transitions = 1000000000\n" + VALID_STEP + 'next = "step1"\n', "max_transitions"),
    ("max_transitions = 10000\n" + VALID_STEP.replace("2.0", "86000.0"), "max_transitions"),
    (VALID_STEP.replace('"sequence"', '"mppi"') + 'mppi = {num_samples = "many"}\n',
     "field 'mppi.num_samples'"),
    (VALID_STEP.replace('"sequence"', '"mppi"') + "mppi = {num_samples = 1000000000000}\n",
     "field 'mppi.num_samples'"),
    (VALID_STEP.replace('"sequence"', '"mppi"') + "mppi = {temperature = nan}\n",
     "field 'mppi.temperature'"),
    (VALID_STEP.replace("[1.0, 0.0]", "[1e308, 0.0]"), "field 'goal[0]"),
    (VALID_STEP.replace("radius", "r") + "radius = inf\n", "field 'radius'"),
    (VALID_STEP.replace('"sequence"', '"spirl"'), "hrl eval --policy"),
    (VALID_STEP.replace('"sequence"', "42"), "field 'high_level'"),
    ("description = '" + "x" * 10 + "'\n" + "z = " + "[" * 5000 + "]" * 5000 + "\n", "nest"),
]  # fmt: skip


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory with a precious file, a directory named like a PNG, an existing plot and
    dataset, and a non-empty package directory; every command runs inside it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "precious.txt").write_text("keep me\n")
    (tmp_path / "plots.png").mkdir()
    (tmp_path / "old.png").write_bytes(b"\x89PNG old")
    (tmp_path / "old.h5").write_bytes(b"old data")
    (tmp_path / "package").mkdir()
    (tmp_path / "package" / "skill.json").write_text("{}")
    for name in ("dads-pointmass", "am-maze", "spirl-maze-far"):  # packages beside --out
        shutil.copytree(PRETRAINED / name, tmp_path / f"copy-of-{name}")
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def fail_if_called(*_args, **_kwargs):
    raise AssertionError("the refusal came after the work started")


@pytest.fixture
def no_work(monkeypatch):
    """Training, episodes, collection and task runs fail the test if they start."""
    targets = [
        "hrl_runtime.cli.follow.follow_goals",
        "hrl_runtime.cli.follow.load_skill",
        "envs.collect_dataset",
        "hrl_runtime.taskfiles.run_task",
        "skill_library.dads.train.DADSTrainer.train",
        "skill_library.spirl.train.train_skill_model",
        "skill_library.spirl.downstream.SPiRLTrainer.train",
        "skill_library.actionable.train.train_actionable",
        "hrl_runtime.experiments.loop_bench.run_loop_benchmark",
        "hrl_runtime.experiments.planning_bench.run_benchmark",
        "hrl_runtime.experiments.spirl_compare.run_comparison",
        "hrl_runtime.experiments.policy_eval.evaluate_policy",
        "hrl_runtime.serving.server.PolicyServer",
    ]
    for target in targets:
        monkeypatch.setattr(target, fail_if_called)


def refuse(capsys, argv: list[str]) -> str:
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 2, err
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1 and err.strip(), err
    assert "Traceback" not in err and "usage:" not in err
    assert len(err) < 1000
    return err


@pytest.mark.parametrize(("argv", "names"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_arguments_are_refused_in_one_line_before_any_work(
    capsys, workdir, no_work, argv, names
):
    argv = [a.replace("{tmp}", str(workdir)) for a in argv]
    before = snapshot(workdir)
    err = refuse(capsys, argv)
    assert names in err
    assert snapshot(workdir) == before  # nothing created, nothing replaced


@pytest.mark.parametrize(("body", "names"), TASKS, ids=[t[1] for t in TASKS])
def test_bad_task_files_are_refused_in_one_line_naming_the_field(
    capsys, workdir, no_work, body, names
):
    path = workdir / "task.toml"
    path.write_text(TASK + body)
    err = refuse(capsys, ["run", str(path)])
    assert names in err and "task.toml" in err


def test_non_utf8_and_oversized_task_files_are_refused(capsys, workdir, no_work):
    path = workdir / "task.toml"
    path.write_bytes(TASK.encode() + b'name = "\xff\xfe"\n' + VALID_STEP.encode())
    assert "UTF-8" in refuse(capsys, ["run", str(path)])
    path.write_text(TASK + "# padding\n" * 200_000 + VALID_STEP)
    assert "at most 1,000,000" in refuse(capsys, ["run", str(path)])


def test_relative_skill_paths_resolve_against_the_task_file(workdir, monkeypatch):
    from hrl_runtime.taskfiles import load_task

    folder = workdir / "tasks"
    folder.mkdir()
    path = folder / "task.toml"
    path.write_text(TASK + VALID_STEP.replace('"scripted-reach"', '"./my-skill"'))
    monkeypatch.chdir("/")
    step = load_task(path).steps[0]
    assert Path(step.skill) == folder / "my-skill"
    path.write_text(TASK + VALID_STEP)
    assert load_task(path).steps[0].skill == "scripted-reach"  # names stay names


def test_planner_choices_are_those_the_factory_builds(capsys):
    from hrl_runtime.cli.follow import PLANNER_CHOICES
    from planners.factory import PLANNERS

    assert tuple(PLANNER_CHOICES) == tuple(PLANNERS)
    assert main(["follow", "--help"]) == 0
    assert "{sequence,mppi,chaining}" in capsys.readouterr().out


def test_existing_outputs_are_replaced_only_with_force(capsys, workdir, monkeypatch):
    """--force lets collect replace its own file; the JSON names exactly the path written."""
    import envs

    real = envs.collect_dataset

    def tiny(config, **kwargs):
        return real(config.__class__(env_id=config.env_id, episodes=1, seed=0), **kwargs)

    monkeypatch.setattr(envs, "collect_dataset", tiny)
    assert main(["collect", "--episodes", "1", "--out", "old.h5", "--force", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == "old.h5" and envs.load_dataset("old.h5").num_episodes == 1


def test_a_follow_plot_lands_exactly_where_the_json_says(capsys, workdir):
    argv = ["follow", *ARENA, "--goals", "1,1", "--sync", "--plot", "run.png", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["plot"] == "run.png" and (workdir / "run.png").stat().st_size > 10_000
    assert main(argv) == 2  # not replaced without --force
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_dads_says_how_its_step_count_rounds(caplog):
    from hrl_runtime.cli.dads import whole_iterations
    from skill_library.dads.config import DADSConfig

    assert whole_iterations(DADSConfig(steps=100, num_envs=4)) == 120
    assert whole_iterations(DADSConfig(steps=480, num_envs=16)) == 480


def test_dads_set_replaces_fields_of_the_preset_and_refuses_bad_ones(capsys):
    from hrl_runtime.cli.dads import apply_setting
    from hrl_runtime.errors import ConfigError
    from skill_library.dads.config import ant_preset

    config = ant_preset()
    config = apply_setting(config, "sac_updates_per_step=0.04")
    config = apply_setting(config, "num_envs=16")
    config = apply_setting(config, "intrinsic_weight=2")  # an int widens to the float field
    config = apply_setting(config, "sac.learn_alpha=true")
    config = apply_setting(config, "networks.dynamics_hidden=[64, 64]")
    config = apply_setting(config, "skill_hold=null")
    assert config.sac_updates_per_step == 0.04 and config.num_envs == 16
    assert config.intrinsic_weight == 2.0 and isinstance(config.intrinsic_weight, float)
    assert config.sac.learn_alpha is True and config.sac.hidden == (128, 128)
    assert config.networks.dynamics_hidden == (64, 64) and config.skill_hold is None
    assert config.env_id == "Ant-v5"  # the rest of the preset stays
    config.validate()
    for bad, words in [
        ("num_envs", "FIELD=VALUE"),
        ("num_env=3", "no field 'num_env'"),
        ("num_envs=2.5", "expected a int"),
        ("off_policy=1", "expected a bool"),
        ("sac=1", "one by one"),
        ("steps.x=1", "no fields of its own"),
        ("sac.lr=1", "no field 'lr'"),
    ]:
        with pytest.raises(ConfigError, match=words):
            apply_setting(config, bad)
    # from the command line: one clear line, nothing trained
    assert main(["train", "dads", "--env", "Ant-v5", "--set", "num_env=3", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no field 'num_env'" in err[0]


def test_trainers_refuse_to_package_non_finite_weights(tmp_path):
    import numpy as np

    from hrl_runtime.errors import ConfigError
    from hrl_runtime.registry import load_skill
    from skill_library.run import save_package
    from skill_library.spirl.config import SkillTrainingConfig

    skill = load_skill("spirl-maze")
    tensors = skill.package_tensors()
    _stem, arrays = next(iter(tensors.items()))
    key = next(iter(arrays))
    arrays[key] = np.full_like(arrays[key], np.nan)
    skill.package_tensors = lambda: tensors
    with pytest.raises(ConfigError, match="non-finite"):
        save_package(skill, tmp_path / "nan", name="nan-skill", description="",
                     config=SkillTrainingConfig(), metrics={})  # fmt: skip
    assert not (tmp_path / "nan").exists()


def test_a_shipped_package_may_be_retrained_under_its_name_outside_the_search_path(
    tmp_path, monkeypatch
):
    """The README's recipes retrain shipped packages under their own names: two copies clash
    only where one registry sees both (beside each other, or in a search-path root)."""
    import argparse

    from hrl_runtime.cli.common import check_package_target
    from hrl_runtime.errors import ConfigError

    monkeypatch.delenv("HRL_SKILLS_PATH", raising=False)
    args = argparse.Namespace(
        out=str(tmp_path / "dads-pointmass"), name="dads-pointmass", version="1.0.0",
        force=False, resume=False,
    )  # fmt: skip
    assert check_package_target(args) == tmp_path / "dads-pointmass"
    monkeypatch.setenv("HRL_SKILLS_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="already exists in"):
        check_package_target(args)

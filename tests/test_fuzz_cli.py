"""Property-based fuzzing of the command line, task files and dataset files.

The invariant: a command exits 0 (or reaches the work, which is stubbed here) or exits 2 with
one line on stderr and no traceback; a loader returns or raises a one-line ConfigError/HrlError;
nothing that existed is overwritten. Every example refuses or is accepted before heavy work.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hrl_runtime.cli import main
from hrl_runtime.errors import HrlError

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Accepted(Exception):
    """Raised by the stubbed work: the command accepted its input."""


def accept(*_args, **_kwargs):
    raise Accepted


WORK = [
    "hrl_runtime.cli.follow.follow_goals",
    "envs.collect_dataset",
    "hrl_runtime.taskfiles.run_task",
    "skill_library.dads.train.DADSTrainer",
    "hrl_runtime.experiments.loop_bench.run_loop_benchmark",
]


@pytest.fixture(scope="module")
def home():
    """A directory with files that must survive every example."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "precious.txt").write_text("keep me\n")
        (root / "old.png").write_bytes(b"\x89PNG old")
        (root / "old.h5").write_bytes(b"old")
        (root / "dir.png").mkdir()
        (root / "package").mkdir()
        (root / "package" / "skill.json").write_text("{}")
        yield root


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
        if p.name in ("precious.txt", "old.png", "old.h5", "skill.json", "dir.png", "package")
    }


def run(capsys, monkeypatch, home: Path, argv: list[str]) -> None:
    before = snapshot(home)
    with monkeypatch.context() as patch:
        for target in WORK:
            patch.setattr(target, accept)
        patch.chdir(home)
        try:
            status = main(argv)
        except Accepted:
            status = 0
    out, err = capsys.readouterr()
    assert status in (0, 2), (argv, err)
    assert "Traceback" not in err
    if status == 2:
        assert out == "" and err.count("\n") == 1 and err.strip(), (argv, err)
        assert len(err) < 1000
    assert snapshot(home) == before, argv


NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e308", "-0", "0x10", "1_000", " 3 ", "", "٣"]),
    st.text(max_size=20),
)
PATHS = st.one_of(
    st.sampled_from(
        ["", ".", "/", "/proc/x.png", "/etc/hostname/x.png", "precious.txt", "old.png", "old.h5",
         "dir.png", "package", "new.png", "new.h5", "a/b/c.png", "x" * 300 + ".png", "nul\x00.png",
         "../../evil.png", "~/x.png"]
    ),
    st.text(max_size=30),
)  # fmt: skip
FOLLOW = ["follow", "--skill", "scripted-reach", "--env", "hrl/PointArena-v0", "--sync"]


@FUZZ
@given(
    option=st.sampled_from(["--seed", "--max-steps", "--random-goals", "--radius", "--threads"]),
    value=NUMBERS,
)
def test_follow_numbers(capsys, monkeypatch, home, option, value):
    goals = [] if option == "--random-goals" else ["--random-goals", "2"]
    run(capsys, monkeypatch, home, [*FOLLOW, *goals, f"{option}={value}"])


@FUZZ
@given(goals=st.one_of(
    st.lists(st.tuples(NUMBERS, NUMBERS), min_size=0, max_size=4).map(
        lambda pairs: ";".join(f"{x},{y}" for x, y in pairs)),
    st.text(max_size=40),
))  # fmt: skip
def test_follow_goals(capsys, monkeypatch, home, goals):
    run(capsys, monkeypatch, home, [*FOLLOW, f"--goals={goals}"])


@FUZZ
@given(option=st.sampled_from(["--plot", "--video"]), path=PATHS, force=st.booleans())
def test_follow_output_paths(capsys, monkeypatch, home, option, path, force):
    argv = [*FOLLOW, "--goals", "1,1", f"{option}={path}", *(["--force"] if force else [])]
    run(capsys, monkeypatch, home, argv)


@FUZZ
@given(
    out=PATHS,
    name=st.one_of(st.sampled_from(["dads-pointmass", "ok-name", "../../evil", "A"]), st.text()),
    version=st.one_of(st.sampled_from(["1.0.0", "2", "x"]), st.text(max_size=10)),
    steps=NUMBERS,
    extra=st.sampled_from([[], ["--resume"], ["--force"]]),
)
def test_train_dads_arguments(capsys, monkeypatch, home, out, name, version, steps, extra):
    argv = ["train", "dads", f"--out={out}", f"--name={name}", f"--version={version}",
            f"--steps={steps}", *extra]  # fmt: skip
    run(capsys, monkeypatch, home, argv)


@FUZZ
@given(out=PATHS, episodes=NUMBERS, force=st.booleans())
def test_collect_arguments(capsys, monkeypatch, home, out, episodes, force):
    argv = ["collect", f"--episodes={episodes}", f"--out={out}", *(["--force"] if force else [])]
    run(capsys, monkeypatch, home, argv)


@FUZZ
@given(option=st.sampled_from(["--steps", "--threads", "--load", "--seed"]), value=NUMBERS)
def test_bench_loop_numbers(capsys, monkeypatch, home, option, value):
    run(capsys, monkeypatch, home, ["bench", "loop", f"{option}={value}"])


# --- task files --------------------------------------------------------------------------------
def toml_value(depth: int = 3) -> st.SearchStrategy[str]:
    scalars = st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["nan", "inf", "-inf", "true", "false", "1e308", "1e12", "-1", "0"]),
        st.text(max_size=20).map(json.dumps),
    )
    if depth == 0:
        return scalars
    inner = toml_value(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.sampled_from(["num_samples", "horizon", "x", "temperature"]), inner,
                        max_size=2).map(
            lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"),
    )  # fmt: skip


TASK_FIELDS = ["env", "seed", "control_rate_hz", "start", "max_transitions", "name"]
STEP_FIELDS = ["skill", "high_level", "goal", "goals", "stop", "duration_s", "radius",
               "timeout_s", "fallback", "next", "on_fail", "mppi", "id"]  # fmt: skip
BASE_TASK = {"env": '"hrl/PointArena-v0"'}
BASE_STEP = {"skill": '"scripted-reach"', "high_level": '"sequence"', "goal": "[1.0, 0.0]",
             "timeout_s": "2.0"}  # fmt: skip


def task_text(task: dict[str, str], steps: list[dict[str, str]]) -> str:
    lines = ["[task]", *(f"{k} = {v}" for k, v in task.items())]
    for step in steps:
        lines += ["[[steps]]", *(f"{k} = {v}" for k, v in step.items())]
    return "\n".join(lines) + "\n"


def load_or_refuse(path: Path) -> None:
    from hrl_runtime.taskfiles import load_task

    try:
        task = load_task(path)
    except HrlError as error:
        assert "\n" not in str(error) and len(str(error)) < 2000
    else:
        assert all(math.isfinite(s.timeout_s) and np.isfinite(s.goals).all() for s in task.steps)


@FUZZ
@given(
    task=st.dictionaries(st.sampled_from(TASK_FIELDS), toml_value(), max_size=3),
    steps=st.lists(st.dictionaries(st.sampled_from(STEP_FIELDS), toml_value(), max_size=3),
                   min_size=0, max_size=3),
)  # fmt: skip
def test_task_files_with_random_fields(tmp_path_factory, task, steps):
    path = tmp_path_factory.mktemp("task") / "task.toml"
    path.write_text(task_text({**BASE_TASK, **task}, [{**BASE_STEP, **s} for s in steps]))
    load_or_refuse(path)


@FUZZ
@given(data=st.binary(max_size=300), depth=st.integers(0, 3000))
def test_task_files_of_random_bytes_and_deep_nesting(tmp_path_factory, data, depth):
    folder = tmp_path_factory.mktemp("task")
    (folder / "bytes.toml").write_bytes(data)
    load_or_refuse(folder / "bytes.toml")
    nested = "[" * depth + "]" * depth
    (folder / "deep.toml").write_text(task_text({**BASE_TASK, "x": nested or "1"}, [BASE_STEP]))
    load_or_refuse(folder / "deep.toml")


def test_task_file_through_the_cli(capsys, monkeypatch, home):
    path = home / "t.toml"
    path.write_text(task_text(BASE_TASK, [BASE_STEP]))
    run(capsys, monkeypatch, home, ["run", str(path)])  # reaches run_task: accepted
    path.write_bytes(b"\xff\xfe[task]")
    run(capsys, monkeypatch, home, ["run", str(path)])


# --- dataset files -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def valid_dataset() -> bytes:
    import envs

    rng = np.random.default_rng(0)
    dataset = envs.TrajectoryDataset(
        observations=rng.normal(size=(22, 4)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(20, 2)).astype(np.float32),
        episode_lengths=np.array([10, 10], np.int64),
        env_id="hrl/PointMaze-v0",
        action_repeat=1,
        seed=0,
        collector={},
    )
    with tempfile.TemporaryDirectory() as directory:
        return dataset.save(Path(directory) / "d.h5").read_bytes()


def load_dataset_or_refuse(path: Path) -> None:
    from hrl_runtime.cli.common import load_dataset

    try:
        load_dataset(str(path))
    except HrlError as error:
        assert "\n" not in str(error).strip() and len(str(error)) < 2000


@FUZZ
@given(data=st.binary(max_size=400))
def test_dataset_files_of_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("data") / "d.h5"
    path.write_bytes(data)
    load_dataset_or_refuse(path)


@FUZZ
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)),
                                                max_size=8))  # fmt: skip
def test_truncated_and_corrupted_dataset_files(tmp_path_factory, valid_dataset, cut, flips):
    data = bytearray(valid_dataset[: max(8, int(len(valid_dataset) * cut))])
    for where, mask in flips:
        data[int(where * (len(data) - 1))] ^= mask
    path = tmp_path_factory.mktemp("data") / "d.h5"
    path.write_bytes(bytes(data))
    load_dataset_or_refuse(path)

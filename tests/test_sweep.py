"""Sweeps on the local backend: seed lists, refusals, rows equal to `hrl follow`, a killed trial
process that loses nothing, and a resumed sweep that runs only what is missing."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from hrl_runtime.cli import main
from hrl_runtime.errors import ConfigError
from hrl_runtime.experiments.backends import BackendConfig
from hrl_runtime.experiments.processes import WORKER_MODULE
from hrl_runtime.experiments.sweep import RESULTS_FILE, parse_seeds, sweep
from hrl_runtime.experiments.trials import mean_interval

# A tiny follow run: one sampled goal, 40 control steps (the goal is not reached; the distances
# still tell the seeds apart).
FOLLOW = {"env": "hrl/PointArena-v0", "random_goals": 1, "goals": None, "max_steps": 40,
          "radius": None}  # fmt: skip
AXES = {"skill": ["dads-pointmass"], "planner": ["mppi"]}


def test_seeds_are_ranges_and_lists():
    assert parse_seeds("1-8") == [1, 2, 3, 4, 5, 6, 7, 8]
    assert parse_seeds("0,3, 7") == [0, 3, 7]
    assert parse_seeds("1-3,10-11") == [1, 2, 3, 10, 11]
    assert parse_seeds("5") == [5]
    for bad, message in [("3-1", "not a range"), ("1,1", "repeats"), ("x", "not an integer"),
                         ("-1", "not an integer"), ("0-20000", "not a range")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            parse_seeds(bad)


def test_mean_interval_by_hand():
    # mean 0.5, sample sd 0.5/sqrt(3)*... : values 0, 0.5, 1 -> sd 0.5, t(0.975, 2) = 4.3027
    result = mean_interval([0.0, 0.5, 1.0])
    half = 4.302652729911275 * 0.5 / 3**0.5
    assert result["mean"] == pytest.approx(0.5) and result["n"] == 3
    assert result["ci95"] == pytest.approx([0.5 - half, 0.5 + half])
    assert mean_interval([0.25]) == {"mean": 0.25, "ci95": None, "n": 1}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "3-1"], "not a range"),
        (["--seeds", "1-2", "--address", "auto"], "--address names a Ray cluster"),
        (["--seeds", "1-2", "--cpus-per-trial", "0"], "--cpus-per-trial"),
        (["--seeds", "1-2", "--retries", "11"], "--retries"),
        (["--seeds", "1-2", "--env", "hrl/Nowhere-v0"], "Nowhere"),
    ],
)
def test_bad_sweep_arguments_are_refused_in_one_line(capsys, tmp_path, argv, message):
    base = ["sweep", "follow", "--skill", "dads-pointmass", "--env", "hrl/PointArena-v0",
            "--random-goals", "1", "--out", str(tmp_path / "sweep")]  # fmt: skip
    status = main([*base, *argv])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert message in captured.err and captured.err.count("\n") == 1
    assert not (tmp_path / "sweep" / RESULTS_FILE).exists()


def kill_a_trial_when_one_finished(results, killed: list[int], find_trial_processes) -> None:
    """Waits for the first finished trial on disk, then SIGKILLs one running trial process."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if results.exists() and results.read_text().count("\n") >= 1:
            for pid in find_trial_processes():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.05)


def processes(matches) -> list[int]:
    """Ids of the processes whose (parent id, command line) ``matches`` (Linux ``/proc``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
        if matches(parent, command):
            found.append(int(entry))
    return found


def local_trial_processes() -> list[int]:
    """The trial processes this test's sweep started."""
    me = os.getpid()
    return processes(lambda parent, command: parent == me and WORKER_MODULE in command)


_KILLED_LOCAL_SWEEP: list = []
"""The one run of :func:`killed_local_sweep` (the fixture is imported by test_ray too, where pytest
gives it a definition of its own)."""


@pytest.fixture(scope="session")
def killed_local_sweep(tmp_path_factory):
    """A local sweep of seeds 1-3 (2 side by side) whose trial process is killed once the first
    trial is on disk: ``(report, results file, killed process ids)``. test_ray compares Ray's
    rows with these."""
    if not os.path.isdir("/proc/self"):
        pytest.skip("finding the trial processes to kill reads /proc (Linux)")
    if not _KILLED_LOCAL_SWEEP:
        out = tmp_path_factory.mktemp("local-sweep")
        results = out / RESULTS_FILE
        killed: list[int] = []
        killer = threading.Thread(
            target=kill_a_trial_when_one_finished, args=(results, killed, local_trial_processes)
        )
        killer.start()
        backend = BackendConfig("local", jobs=2, retries=2)
        report = sweep("follow", FOLLOW, AXES, [1, 2, 3], out, backend)
        killer.join()
        _KILLED_LOCAL_SWEEP.append((report, results, killed))
    return _KILLED_LOCAL_SWEEP[0]


def test_a_killed_trial_process_loses_nothing_and_a_resumed_sweep_runs_only_the_rest(
    killed_local_sweep, capsys
):
    first, results, killed = killed_local_sweep
    assert killed, "no trial process was running after the first trial finished"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["kwargs"]["seed"] for r in records) == [1, 2, 3]  # each once, none lost
    assert first["trials_run"] == 3 and [r["seed"] for r in first["rows"]] == [1, 2, 3]
    assert len({row["goals"][0][0] for row in first["rows"]}) == 3  # the seeds differ

    # An interruption: the last record cut short. Run again, only its trial runs.
    text = results.read_text()
    results.write_text(text[: text.rstrip("\n").rfind("\n") + 1 + 25])
    status = main(["sweep", "follow", "--skill", "dads-pointmass", "--planner", "mppi",
                   "--env", FOLLOW["env"], "--random-goals", "1", "--max-steps", "40",
                   "--seeds", "1-3", "--jobs", "2", "--out", str(results.parent),
                   "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    resumed = json.loads(captured.out)  # exactly one JSON object
    assert (resumed["trials_run"], resumed["trials_resumed"]) == (1, 2)
    assert resumed["rows"] == first["rows"]
    assert resumed["success_rate"]["n"] == 3
    assert results.read_text().count("\n") == 3


def test_a_sweep_row_is_the_follow_command_with_the_trial_threads(killed_local_sweep, capsys):
    first, _, _ = killed_local_sweep
    status = main(["follow", "--skill", "dads-pointmass", "--planner", "mppi", "--env",
                   FOLLOW["env"], "--random-goals", "1", "--max-steps", "40", "--seed", "2",
                   "--sync", "--threads", "1", "--json"])  # fmt: skip
    single = json.loads(capsys.readouterr().out)
    assert status == 0
    row = first["rows"][1]
    assert row["seed"] == 2 and row["success_rate"] == single["success_rate"]
    assert row["final_distance"] == [g["final_distance"] for g in single["goals"]]
    assert row["goals"] == [g["goal"] for g in single["goals"]]


def test_a_follow_trial_runs_on_the_body_it_is_given():
    from hrl_runtime.experiments.sweep import follow_trial

    common = dict(skill="scripted-reach", env="hrl/PointArena-v0", planner="sequence", seed=5,
                  goals=[[2.0, 0.0]], max_steps=60)  # fmt: skip
    nominal = follow_trial(**common)["row"]
    weak = follow_trial(**common, perturb="gain=0.3")["row"]
    again = follow_trial(**common, perturb="gain=0.3")["row"]
    assert weak == again  # a trial is deterministic on a perturbed body too
    # with a third of the motor strength the point mass covers less ground in 60 steps
    assert weak["final_distance"][0] > nominal["final_distance"][0] + 0.1


def test_sweep_run_replaces_the_task_seed_and_groups_by_body(tmp_path, capsys):
    task = tmp_path / "short.toml"
    task.write_text(
        '[task]\nname = "short"\nenv = "hrl/PointArena-v0"\ncontrol_rate_hz = 100\n'
        '[defaults]\nskill = "scripted-reach"\nhigh_level = "sequence"\nradius = 0.5\n'
        'timeout_s = 3.0\n[[steps]]\nid = "east"\ngoal = [1.0, 0.0]\nnext = "end"\n'
    )
    status = main(["sweep", "run", str(task), "--seeds", "7", "--perturb", "gain=1.0",
                   "mass=2", "--out", str(tmp_path / "sweep"), "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["trials"] == 2 and len(report["groups"]) == 2
    assert [row["perturb"] for row in report["rows"]] == ["gain=1.0", "mass=2"]
    assert all(row["success_rate"] == 1.0 and row["path"] == ["east"] for row in report["rows"])
    records = (tmp_path / "sweep" / RESULTS_FILE).read_text().splitlines()
    assert [json.loads(r)["kwargs"]["seed"] for r in records] == [7, 7]


def test_sweep_refuses_a_body_that_does_not_fit_before_any_trial(tmp_path, capsys):
    status = main(["sweep", "follow", "--skill", "scripted-reach", "--env", "hrl/PointArena-v0",
                   "--random-goals", "1", "--seeds", "1", "--perturb", "leg=2",
                   "--out", str(tmp_path / "s")])  # fmt: skip
    assert status == 2 and "leg is for Ant-v5" in capsys.readouterr().err
    assert not (tmp_path / "s" / RESULTS_FILE).exists()


def test_an_explicit_ray_address_sends_the_cluster_token_when_there_is_one(tmp_path, monkeypatch):
    from hrl_runtime.experiments.backends import use_cluster_token

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    use_cluster_token()
    assert "RAY_AUTH_MODE" not in os.environ  # no token here: Ray's own default stays
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret")
    use_cluster_token()
    assert os.environ["RAY_AUTH_MODE"] == "token"  # the token `ray start --head` wrote
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    use_cluster_token()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # the user's choice wins

"""The shared argument checks: one clear line for every bad value, bounds held, nothing existing
replaced, output paths tried before any work."""

from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hrl_runtime import checks
from hrl_runtime.errors import ConfigError


@pytest.mark.parametrize("value", ["-1", -1, "4294967296", "1.5", "x", True, None, 2.5, "9" * 400])
def test_bad_seeds_are_refused_in_one_line(value):
    with pytest.raises(ConfigError) as error:
        checks.seed(value)
    assert "\n" not in str(error.value) and len(str(error.value)) < 400
    assert "0..4294967295" in str(error.value)


@pytest.mark.parametrize("value", ["0", 7, "4294967295", 3.0])
def test_good_seeds_pass(value):
    assert checks.seed(value) == int(float(value))


@given(st.one_of(st.floats(), st.integers(), st.text(max_size=30), st.booleans(), st.none()))
def test_real_returns_a_finite_number_in_bounds_or_refuses(value):
    try:
        number = checks.real(value, "--radius", low=0.0, low_open=True, high=100.0)
    except ConfigError as error:
        assert "--radius" in str(error) and "\n" not in str(error)
    else:
        assert math.isfinite(number) and 0.0 < number <= 100.0


def test_counts_are_bounded():
    assert checks.count("20", "--random-goals", high=checks.MAX_GOALS) == 20
    for value in ("0", "100000000", "-3"):
        with pytest.raises(ConfigError, match="--random-goals"):
            checks.count(value, "--random-goals", high=checks.MAX_GOALS)


def test_coordinates_refuse_nan_huge_and_wrong_length():
    assert checks.coordinates("1,-2.5", "goal", 2) == [1.0, -2.5]
    for value in ("1,nan", "1e308,0", "1", [1, "a"], {"x": 1}):
        with pytest.raises(ConfigError, match="goal"):
            checks.coordinates(value, "goal", 2)


def test_huge_values_are_echoed_shortened():
    with pytest.raises(ConfigError) as error:
        checks.integer("x" * 50_000_000, "name")
    assert len(str(error.value)) < 400 and "50000000 characters" in str(error.value)


def test_output_files_are_checked_before_work(tmp_path):
    good = tmp_path / "run.png"
    assert checks.output_file(str(good), "--plot", suffixes=(".png",)) == good
    (tmp_path / "dir.png").mkdir()
    existing = tmp_path / "old.png"
    existing.write_text("precious")
    bad = {
        str(tmp_path / "p.txt"): "must end in .png",
        str(tmp_path / "dir.png"): "is a directory",
        str(existing): "--force",
        str(tmp_path / "missing" / "x.png"): "does not exist",
        str(existing / "x.png"): "is not a directory",
        "/proc/x.png": "not writable",
        "": "not a file path",
    }
    for value, problem in bad.items():
        with pytest.raises(ConfigError, match=problem):
            checks.output_file(value, "--plot", suffixes=(".png",))
    assert existing.read_text() == "precious"
    assert checks.output_file(str(existing), "--plot", suffixes=(".png",), force=True) == existing


def test_output_dirs_never_replace_what_exists(tmp_path):
    full = tmp_path / "pkg"
    full.mkdir()
    (full / "skill.json").write_text("{}")
    with pytest.raises(ConfigError, match="--resume"):
        checks.output_dir(str(full), "--out")
    assert checks.output_dir(str(full), "--out", resume=True) == full
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        checks.output_dir(str(tmp_path / "file"), "--out")
    with pytest.raises(ConfigError, match="not a directory path"):
        checks.output_dir("", "--out")
    assert checks.output_dir(str(tmp_path / "new"), "--out") == tmp_path / "new"


def test_argparse_reports_a_check_as_its_own_error(capsys):
    parser = argparse.ArgumentParser(prog="hrl follow")
    parser.add_argument("--seed", type=checks.argparse_type(checks.seed))
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--seed=-1"])
    assert stop.value.code == 2
    assert "argument --seed: '-1' is out of range" in capsys.readouterr().err

"""Skill packages: round trips are bit-identical and every refusal names the file and field."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from hrl_runtime import PackageError, SkillRegistry, UnknownSkillError
from hrl_runtime.registry import known_kinds, load_package, sha256_of, verify_package
from skill_library.scripted import ScriptedReachSkill


def _save(reach_skill, directory: Path, version: str = "1.0.0", name: str = "reach-test") -> Path:
    return SkillRegistry([directory.parent]).save(
        reach_skill, directory, name=name, version=version, metrics={"note": 1.0}
    )


def _rehash(package: Path, filename: str) -> None:
    manifest = json.loads((package / "skill.json").read_text())
    manifest["weights"][filename]["sha256"] = sha256_of(package / filename)
    (package / "skill.json").write_text(json.dumps(manifest))


def _edit_manifest(package: Path, edit) -> None:
    manifest = json.loads((package / "skill.json").read_text())
    edit(manifest)
    (package / "skill.json").write_text(json.dumps(manifest))


def test_round_trip_gives_bit_identical_actions(reach_skill, tmp_path):
    package = _save(reach_skill, tmp_path / "pkgs" / "reach")
    loaded = load_package(package)
    assert isinstance(loaded, ScriptedReachSkill)
    assert (loaded.name, loaded.version) == ("reach-test", "1.0.0")
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, 4)).astype(np.float32) * 3
    goals = rng.uniform(-5, 5, size=(64, 2)).astype(np.float32)
    for o, g in zip(obs, goals, strict=True):
        assert reach_skill.act(o, g).tobytes() == loaded.act(o, g).tobytes()
    assert reach_skill.act_batch(obs, goals).tobytes() == loaded.act_batch(obs, goals).tobytes()
    states = rng.normal(size=(8, 2)).astype(np.float32)
    assert np.array_equal(
        reach_skill.dynamics.predict(states, goals[:8]), loaded.dynamics.predict(states, goals[:8])
    )
    assert loaded.hold_steps == reach_skill.hold_steps
    assert loaded.components == {"dynamics": True, "prior": False, "value": False}


def test_manifest_records_what_it_should(reach_skill, tmp_path):
    package = _save(reach_skill, tmp_path / "pkgs" / "reach")
    manifest = json.loads((package / "skill.json").read_text())
    for key in ("name", "version", "kind", "spaces", "hold_steps", "components", "weights"):
        assert key in manifest
    assert manifest["kind"] == "scripted_reach"
    assert manifest["metrics"] == {"note": 1.0}
    for filename, entry in manifest["weights"].items():
        assert entry["sha256"] == sha256_of(package / filename)
    assert verify_package(package)["ok"]


def test_missing_manifest_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageError, match=r"skill\.json: manifest is missing"):
        load_package(tmp_path / "empty")


def test_invalid_json_is_refused(reach_skill, tmp_path):
    package = _save(reach_skill, tmp_path / "pkgs" / "reach")
    (package / "skill.json").write_text("{not json")
    with pytest.raises(PackageError, match="is not valid JSON"):
        load_package(package)


@pytest.mark.parametrize(
    ("field", "value"),
    [("hold_steps", 0), ("version", "one"), ("name", "Bad Name"), ("format_version", 99)],
)
def test_invalid_field_is_refused_by_name(reach_skill, tmp_path, field, value):
    package = _save(reach_skill, tmp_path / "pkgs" / "reach")
    _edit_manifest(package, lambda m: m.__setitem__(field, value))
    with pytest.raises(PackageError, match=rf"\[{field}\]") as error:
        load_package(package)
    assert "skill.json" in str(error.value)


def test_hash_mismatch_is_refused(reach_skill, tmp_path):
    package = _save(reach_skill, tmp_path / "pkgs" / "reach")
    data = bytearray((package / "policy.safetensors").read_bytes())
    data[-1] ^= 0x01  # flip one bit of the last weight
    (package / "policy.safetensors").write_bytes(bytes(data))
    with pytest.raises(PackageError, match="SHA-256 mismatch") as error:
        load_package(package)
    assert "policy.safetensors" in str(error.value)
    assert "sha256" in str(error.value)


def test_shape_mismatch_is_refused(reach_skill, tmp_path):
    package = _save(reach_skill, tmp_path / "pkgs" / "reach")
    _edit_manifest(
        package,
        lambda m: m["weights"]["policy.safetensors"]["tensors"]["kp"].__setitem__("shape", [3]),
    )
    with pytest.raises(PackageError, match=r"tensor 'kp' is float32\[1\].*float32\[3\]") as error:
        load_package(package)
    assert "tensors.kp" in str(error.value)


def test_unknown_kind_is_refused(reach_skill, tmp_path):
    package = _save(reach_skill, tmp_path / "pkgs" / "reach")
    _edit_manifest(package, lambda m: m.__setitem__("kind", "warp_drive"))
    with pytest.raises(PackageError, match=r"\[kind\]: unknown kind 'warp_drive'"):
        load_package(package)


def test_duplicate_name_and_version_is_refused(reach_skill, tmp_path):
    first = _save(reach_skill, tmp_path / "a" / "reach")
    second_root = tmp_path / "b"
    # Copy the package: the same name@version in two places of the search path.
    (second_root / "reach").mkdir(parents=True)
    for file in first.iterdir():
        (second_root / "reach" / file.name).write_bytes(file.read_bytes())
    registry = SkillRegistry([first.parent, second_root])
    with pytest.raises(PackageError, match=r"duplicate package reach-test@1\.0\.0"):
        registry.load("reach-test")
    with pytest.raises(PackageError, match=r"duplicate package reach-test@1\.0\.0"):
        registry.save(reach_skill, tmp_path / "c" / "reach", name="reach-test", version="1.0.0")


class _Boobytrap:
    """Unpickling this creates a marker file: proof that something unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["pickle", "torch"])
def test_pickled_weights_are_refused_without_unpickling(reach_skill, tmp_path, writer):
    package = _save(reach_skill, tmp_path / "pkgs" / "reach")
    marker = tmp_path / "unpickled"
    target = package / "policy.safetensors"
    if writer == "pickle":
        target.write_bytes(pickle.dumps(_Boobytrap(marker)))
    else:
        torch.save({"kp": _Boobytrap(marker)}, target)
    _rehash(package, "policy.safetensors")  # even a matching hash must not get it loaded
    with pytest.raises(PackageError, match="never unpickles") as error:
        load_package(package)
    assert "policy.safetensors" in str(error.value)
    assert not marker.exists()


def test_weight_file_outside_the_package_is_refused(reach_skill, tmp_path):
    package = _save(reach_skill, tmp_path / "pkgs" / "reach")

    def escape(manifest):
        manifest["weights"]["../evil.safetensors"] = manifest["weights"].pop("policy.safetensors")
        manifest["components"]["policy"] = None

    _edit_manifest(package, escape)
    with pytest.raises(PackageError, match="plain"):
        load_package(package)


def test_resolution_by_name_version_and_search_path(reach_skill, tmp_path, monkeypatch):
    root = tmp_path / "extra"
    _save(reach_skill, root / "v1", version="1.2")
    _save(reach_skill, root / "v2", version="1.10")
    monkeypatch.setenv("HRL_SKILLS_PATH", str(root))
    registry = SkillRegistry()
    assert registry.resolve("reach-test").version == "1.10"  # numeric, not lexical
    assert registry.resolve("reach-test@1.2").path == root / "v1"
    assert registry.load("reach-test@1.2").version == "1.2"
    assert registry.resolve("scripted-reach").source == "shipped"
    with pytest.raises(UnknownSkillError, match="no package 'reach-test@9'"):
        registry.resolve("reach-test@9")


def test_builtin_kinds_come_from_entry_points():
    assert known_kinds()["scripted_reach"] is ScriptedReachSkill


@pytest.mark.parametrize("header_length", [640, 896, 1152, 1408])
def test_safetensors_headers_that_look_like_pickle_markers_are_accepted(tmp_path, header_length):
    from hrl_runtime.manifest import check_not_pickle

    path = tmp_path / "weights.safetensors"
    header = b"{" + b" " * (header_length - 2) + b"}"
    path.write_bytes(header_length.to_bytes(8, "little") + header + bytes(16))
    assert path.read_bytes()[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
    check_not_pickle(path)  # the safetensors layout wins over the pickle marker
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(PackageError, match="never unpickles"):
        check_not_pickle(path)

"""The registry trusts nothing outside a package: every bad package gets one clear refusal (the
right type, one line, the field and the reason), nothing outside it is read, the valid packages
are still served, and a third-party package made from the public API loads by name."""

from __future__ import annotations

import json
import os
import shutil
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from gymnasium.spaces import Box
from read_spy import reads_recorded

import hrl_runtime.registry as registry_module
from hrl_runtime import PackageError, SkillRegistry, register_kind
from hrl_runtime.cli import main
from hrl_runtime.errors import IncompatibleError, UnknownSkillError
from hrl_runtime.manifest import sha256_of
from hrl_runtime.registry import known_kinds, load_package, verify_package
from hrl_runtime.skill import PackageContents, Skill, SkillDynamics
from planners import SequenceConfig, build_goal_follower

BAD = "bad-pkg"


def shipped(name: str) -> Path:
    return SkillRegistry().resolve(name).path


def copy_package(source: str, root: Path, name: str = BAD) -> Path:
    """A copy of shipped package ``source`` as ``root/name`` whose manifest is named ``name``."""
    target = root / name
    shutil.copytree(shipped(source), target)
    edit(target, lambda m: m.__setitem__("name", name))
    return target


def edit(package: Path, change) -> None:
    manifest = json.loads((package / "skill.json").read_text())
    change(manifest)
    (package / "skill.json").write_text(json.dumps(manifest))


def rehash(package: Path, filename: str) -> None:
    edit(
        package,
        lambda m: m["weights"][filename].__setitem__("sha256", sha256_of(package / filename)),
    )


def write_weights(package: Path, filename: str, change) -> None:
    """Rewrites one weight file after ``change(tensors)`` and re-hashes it in the manifest."""
    from safetensors.numpy import load_file, save_file

    tensors = dict(load_file(str(package / filename)))
    change(tensors)
    save_file(tensors, str(package / filename))
    rehash(package, filename)


def set_in(path: list[Any], value: Any):
    def change(manifest):
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def link(package: Path, filename: str, target: Path | str) -> None:
    (package / filename).unlink()
    os.symlink(target, package / filename)


def fifo(package: Path, filename: str, tmp_path: Path) -> None:
    (package / filename).unlink()
    os.mkfifo(package / filename)


def fifo_outside(package: Path, filename: str, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "outside-fifo")
    link(package, filename, tmp_path / "outside-fifo")


def manifest_outside(package: Path, filename: str, tmp_path: Path) -> None:
    shutil.copy(package / "skill.json", tmp_path / "elsewhere.json")
    link(package, "skill.json", tmp_path / "elsewhere.json")


def huge_name(package: Path, filename: str, tmp_path: Path) -> None:
    edit(package, set_in(["name"], "a" * 50_000_000))


def long_name(package: Path, filename: str, tmp_path: Path) -> None:
    edit(package, set_in(["name"], "b" * 500_000))


def deep_json(package: Path, filename: str, tmp_path: Path) -> None:
    (package / "skill.json").write_text('{"name": ' + "[" * 100_000 + "]" * 100_000 + "}")


def mildly_deep(package: Path, filename: str, tmp_path: Path) -> None:
    nested: Any = 1
    for _ in range(60):
        nested = {"x": nested}
    edit(package, set_in(["config", "extra"], nested))


def nan_weights(package: Path, filename: str, tmp_path: Path) -> None:
    write_weights(
        package, "policy.safetensors", lambda t: t.__setitem__("kp", np.array([np.nan], np.float32))
    )


def edit_case(change):
    return lambda package, filename, tmp_path: edit(package, change)


def link_case(target):
    return lambda package, filename, tmp_path: link(package, filename, target(tmp_path))


# (id, shipped source, mutation, words the one-line message must hold)
CASES = [
    ("shape-int", "scripted-reach", edit_case(set_in(["spaces", "observation", "shape"], 4)),
     ["spaces.observation", "shape"]),
    ("dtype-list", "scripted-reach", edit_case(set_in(["spaces", "action", "dtype"], ["float32"])),
     ["spaces.action", "dtype"]),
    ("low-object", "scripted-reach", edit_case(set_in(["spaces", "command", "low"], [{}])),
     ["spaces.command", "low"]),
    ("component-list", "scripted-reach", edit_case(set_in(["components", "policy"], ["policy"])),
     ["components.policy"]),
    ("tensor-dtype-list", "scripted-reach",
     edit_case(set_in(["weights", "policy.safetensors", "tensors", "kp", "dtype"], ["float32"])),
     ["weights.policy.safetensors.tensors.kp", "dtype"]),
    ("deep-json", "scripted-reach", deep_json, ["nests"]),
    ("deep-config", "scripted-reach", mildly_deep, ["nests"]),
    ("huge-name", "scripted-reach", huge_name, ["bytes, more than"]),
    ("long-name", "scripted-reach", long_name, ["[name]", "characters"]),
    ("unknown-kind", "scripted-reach", edit_case(set_in(["kind"], "warp_drive")), ["unknown kind"]),
    ("nan-weights", "scripted-reach", nan_weights, ["tensors.kp", "NaN"]),
    ("config-missing-key", "scripted-reach",
     edit_case(lambda m: m["config"].pop("position_indices")),
     ["config.position_indices", "missing"]),
    ("config-type", "scripted-reach", edit_case(set_in(["config", "goal_extent"], "far")),
     ["config.goal_extent", "number"]),
    ("config-range", "scripted-reach", edit_case(set_in(["config", "position_indices"], [0, 9])),
     ["config.position_indices[1]", "[0, 3]"]),
    ("config-unknown-key", "scripted-reach", edit_case(set_in(["config", "gain"], 2)),
     ["config.gain", "not a known key"]),
    ("dads-hidden-vs-tensors", "dads-pointmass",
     edit_case(set_in(["config", "skill", "policy_hidden"], [128, 128])),
     ["weights.policy.safetensors.tensors", "config implies"]),
    ("dads-latent", "dads-pointmass", edit_case(set_in(["config", "skill", "latent_dim"], 3)),
     ["config.skill.latent_dim", "spaces.command"]),
    ("embedding-tasks", "embed-arm", edit_case(set_in(["config", "skill", "tasks"], 5)),
     ["weights.embedding.safetensors.tensors", "config implies"]),
    ("embedding-bound", "embed-arm",
     edit_case(set_in(["config", "skill", "command_bound"], 9.0)),
     ["config.skill.command_bound", "spaces.command"]),
    ("spirl-horizon", "spirl-maze", edit_case(set_in(["config", "model", "horizon"], 0)),
     ["config.model.horizon"]),
    ("am-elites", "am-maze", edit_case(set_in(["config", "policy", "cem_elites"], 1000)),
     ["config.policy.cem_elites"]),
    ("policy-hidden", "spirl-maze-far", edit_case(set_in(["config", "hidden"], "wide")),
     ["config.hidden"]),
    ("link-other-package", "scripted-reach",
     lambda p, f, t: link(p, f, shipped("scripted-reach") / f), ["symbolic link"]),
    ("link-passwd", "scripted-reach", link_case(lambda t: Path("/etc/passwd")), ["symbolic link"]),
    ("link-dev-zero", "scripted-reach", link_case(lambda t: Path("/dev/zero")), ["symbolic link"]),
    ("link-fifo", "scripted-reach", fifo_outside, ["symbolic link"]),
    ("fifo", "scripted-reach", fifo, ["FIFO", "not a regular file"]),
    ("manifest-link", "scripted-reach", manifest_outside, ["skill.json", "symbolic link"]),
]  # fmt: skip


@pytest.fixture
def spy_reads():
    """Records every path opened through ``open`` and ``os.open``."""
    with reads_recorded() as opened:
        yield opened


def assert_one_line(error: Exception, words: list[str]) -> str:
    message = str(error)
    assert "\n" not in message and len(message) < 800, message[:2000]
    for word in words:
        assert word in message, message
    return message


MANIFEST_LEVEL = {
    "shape-int", "dtype-list", "low-object", "component-list", "tensor-dtype-list", "deep-json",
    "deep-config", "huge-name", "long-name", "manifest-link",
}  # fmt: skip


@pytest.mark.parametrize(("case", "source", "mutate", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_package_is_refused_in_one_line_and_the_others_still_load(
    isolated_search_path, spy_reads, capsys, case, source, mutate, words
):
    root = isolated_search_path / "extra"
    root.mkdir()
    package = copy_package(source, root)
    mutate(package, "policy.safetensors", isolated_search_path)

    spy_reads.clear()
    with pytest.raises(PackageError) as error:
        load_package(package)
    assert_one_line(error.value, words)
    # Nothing outside the package was opened, and no link or FIFO in it either.
    inside = str(package) + os.sep
    assert all(path.startswith(inside) for path in spy_reads), spy_reads
    assert not any(os.path.islink(p) or not os.path.isfile(p) for p in spy_reads), spy_reads

    with pytest.raises(PackageError) as again:
        verify_package(package)  # verify runs the same checks as load
    assert_one_line(again.value, words)
    registry = SkillRegistry()
    by_name = registry.load("scripted-reach")  # the shipped skills still load beside it
    assert by_name.name == "scripted-reach"
    with pytest.raises(PackageError) as by_bad_name:  # its reason, not "no package ... found"
        registry.load(BAD)
    assert str(by_bad_name.value) == str(error.value)

    capsys.readouterr()
    assert main(["skills", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {"scripted-reach", "dads-pointmass"} <= {s["name"] for s in listing["skills"]}
    if case in MANIFEST_LEVEL:  # listed once among the invalid packages, with its reason
        assert len(listing["errors"]) == 1 and str(package) in listing["errors"][0]
        assert listing["invalid"][0]["path"] == str(package)
    else:  # the manifest reads; the kind's and the weights' checks run on load and verify
        assert listing["errors"] == [] and BAD in {s["name"] for s in listing["skills"]}
    assert main(["skills", "verify", str(package)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hrl: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_an_invalid_package_named_on_the_command_line_reports_its_reason(
    isolated_search_path, capsys
):
    root = isolated_search_path / "extra"
    root.mkdir()
    package = copy_package("scripted-reach", root)
    edit(package, set_in(["spaces", "observation", "shape"], 4))
    with pytest.raises(PackageError, match=r"spaces\.observation"):
        SkillRegistry().load(BAD)
    with pytest.raises(UnknownSkillError, match="no package 'nothing-here'"):
        SkillRegistry().load("nothing-here")
    assert main(["skills", "show", BAD]) == 2
    err = capsys.readouterr().err
    assert "spaces.observation" in err and err.count("\n") == 1


def test_a_bare_name_never_resolves_against_the_current_directory(
    isolated_search_path, monkeypatch
):
    workdir = isolated_search_path / "work"
    workdir.mkdir()
    tampered = copy_package("scripted-reach", workdir, "scripted-reach")
    edit(tampered, set_in(["description"], "tampered"))
    monkeypatch.chdir(workdir)
    skill = SkillRegistry().load("scripted-reach")
    assert SkillRegistry().resolve("scripted-reach").source == "shipped"
    assert skill.name == "scripted-reach"
    spied: list[Path] = []
    real = registry_module.load_package
    monkeypatch.setattr(registry_module, "load_package", lambda p: spied.append(p) or real(p))
    SkillRegistry().load("scripted-reach")
    assert spied == [shipped("scripted-reach")]
    # An explicit path is a directory: ./name, a separator, ~, or a Path.
    for ref in ("./scripted-reach", str(tampered), Path("scripted-reach")):
        assert SkillRegistry().load(ref).name == "scripted-reach"
    assert spied[-1].resolve() == tampered.resolve()


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (EntryPoint("ghost_kind", "no_such_module_xyz:Thing", registry_module.ENTRY_POINT_GROUP),
         "ModuleNotFoundError"),
        (EntryPoint("wrong_name", "skill_library.scripted:ScriptedReachSkill",
                    registry_module.ENTRY_POINT_GROUP), "declares kind 'scripted_reach'"),
    ],
    ids=["import-error", "name-differs-from-kind"],
)  # fmt: skip
def test_a_broken_entry_point_is_isolated_to_its_kind(
    isolated_search_path, monkeypatch, entry, reason
):
    real = registry_module.entry_points
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [*real(group=group), entry])
    monkeypatch.setattr(registry_module, "_BROKEN", {})
    assert "scripted_reach" in known_kinds()  # the other kinds load
    assert SkillRegistry().load("dads-pointmass").name == "dads-pointmass"
    root = isolated_search_path / "extra"
    root.mkdir()
    package = copy_package("scripted-reach", root)
    edit(package, set_in(["kind"], entry.name))
    with pytest.raises(PackageError) as error:
        SkillRegistry().load(BAD)
    message = assert_one_line(error.value, ["[kind]", "unavailable", reason])
    assert entry.name in message


def test_the_planner_error_says_what_the_skill_lacks_and_which_planners_fit():
    class Latent(Skill):
        kind = "test_latent_no_dynamics"

        def act(self, obs, command):
            return np.zeros(2, np.float32)

        def package_config(self):
            return {}

        def package_tensors(self):
            return {}

        @classmethod
        def from_package(cls, package):
            raise NotImplementedError

    box = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    skill = Latent(Box(-np.inf, np.inf, (4,), np.float32), box, box, 10)
    goals = np.zeros((1, 2), np.float32)
    with pytest.raises(IncompatibleError) as error:
        build_goal_follower("sequence", skill, goals, (0, 1), SequenceConfig())
    message = str(error.value)
    assert "command_is_goal = True" in message and "--planner mppi" not in message
    assert "mppi needs a dynamics component" in message


# --- a third-party skill package made from the public API --------------------------------------


class GainDynamics(SkillDynamics):
    """Holding a goal moves x-y a step of at most ``reach`` metres toward it."""

    def __init__(self, reach: float):
        self.reach = np.float32(reach)
        self.state_indices = (0, 1)

    def predict(self, states: np.ndarray, commands: np.ndarray) -> np.ndarray:
        delta = commands - states
        distance = np.linalg.norm(delta, axis=-1, keepdims=True)
        return states + delta * np.minimum(1.0, self.reach / np.maximum(distance, 1e-9))


@register_kind
class GoalReacher(Skill):
    """A proportional-derivative goal reacher, packaged the way a user would write it."""

    kind: ClassVar[str] = "test_third_party_reacher"
    command_is_goal: ClassVar[bool] = True

    def __init__(self, gains: np.ndarray, reach: float, observation_space: Box, action_space: Box):
        command_space = Box(-10.0, 10.0, shape=(2,), dtype=np.float32)
        super().__init__(
            observation_space, command_space, action_space, 10, dynamics=GainDynamics(reach)
        )
        self.gains = np.asarray(gains, np.float32)

    def act(self, obs: np.ndarray, command: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        action = self.gains[0] * (command - obs[:2]) - self.gains[1] * obs[2:4]
        return np.clip(action, self.action_space.low, self.action_space.high)

    def package_config(self) -> dict[str, Any]:
        return {"reach": float(self.dynamics.reach)}

    def package_tensors(self) -> dict[str, dict[str, np.ndarray]]:
        return {"policy": {"gains": self.gains}}

    def package_components(self) -> dict[str, str | None]:
        return {"policy": "policy", "dynamics": None, "prior": None, "value": None}

    @classmethod
    def check_package(cls, package: PackageContents) -> None:
        config = package.config_fields()
        config.keys(("reach",))
        config.number("reach", 0.0, 10.0, above=True)
        package.expect_tensors("policy", {"gains": (2,)})

    @classmethod
    def from_package(cls, package: PackageContents) -> GoalReacher:
        return cls(
            package.tensors["policy"]["gains"],
            package.config["reach"],
            package.spaces["observation"],
            package.spaces["action"],
        )


@pytest.fixture
def third_party_package(isolated_search_path, monkeypatch):
    skill = GoalReacher(
        np.array([1.5, 0.5], np.float32),
        0.16,
        Box(-np.inf, np.inf, shape=(4,), dtype=np.float32),
        Box(-1.0, 1.0, shape=(2,), dtype=np.float32),
    )
    directory = isolated_search_path / "extra" / "reacher"
    SkillRegistry().save(skill, directory, name="reacher", version="1.0.0")
    return directory


@pytest.mark.parametrize("planner", ["sequence", "mppi"])
def test_a_third_party_package_loads_by_name_and_follows_goals(
    third_party_package, capsys, planner
):
    loaded = SkillRegistry().load("reacher@1.0.0")
    assert isinstance(loaded, GoalReacher) and loaded.version == "1.0.0"
    assert verify_package(third_party_package)["ok"]
    argv = ["follow", "--skill", "reacher@1.0.0", "--env", "hrl/PointArena-v0", "--goals",
            "2,2;-3,1", "--planner", planner, "--seed", "3", "--sync", "--json"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["success_rate"] == 1.0
    assert all(goal["final_distance"] <= 0.5 for goal in report["goals"])


def test_a_third_party_package_with_a_bad_config_is_refused_by_its_own_check(
    third_party_package,
):
    edit(third_party_package, set_in(["config", "reach"], -1))
    with pytest.raises(PackageError, match=r"\[config\.reach\]: must be a finite number"):
        SkillRegistry().load("reacher")


def test_every_shipped_kind_checks_its_own_config():
    for kind, cls in known_kinds().items():
        if cls.__module__.startswith("skill_library"):
            assert "check_package" in vars(cls), kind

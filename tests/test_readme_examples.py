"""The README's code runs as it stands: a third-party skill package written from the README alone
loads by name and follows goals with each planner that fits it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hrl_runtime.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    """The fenced Python block right after ``<!-- marker -->`` in the README."""
    match = re.search(rf"<!-- {marker} -->\n```python\n(.*?)\n```", README.read_text(), re.S)
    assert match, f"README has no python block after <!-- {marker} -->"
    return match.group(1)


@pytest.fixture(scope="module")
def readme_package(tmp_path_factory):
    """Runs the README's example once per process (it registers its kind)."""
    root = tmp_path_factory.mktemp("hrl-skills")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HRL_SKILLS_PATH", str(root))
        exec(compile(readme_block("third-party-skill-example"), "README.md", "exec"), {})
    return root


@pytest.mark.parametrize("planner", ["sequence", "mppi"])
def test_the_readme_skill_package_loads_by_name_and_follows_goals(
    readme_package, monkeypatch, capsys, planner
):
    monkeypatch.setenv("HRL_SKILLS_PATH", str(readme_package))
    assert main(["skills", "verify", str(readme_package / "reacher"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    argv = ["follow", "--skill", "reacher@1.0.0", "--env", "hrl/PointArena-v0", "--goals",
            "2,2;-3,1", "--planner", planner, "--seed", "3", "--sync", "--json"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["planner"] == planner and report["success_rate"] == 1.0


def test_the_readme_skill_package_refuses_a_bad_config_with_its_own_check(
    readme_package, monkeypatch, capsys
):
    manifest = readme_package / "reacher" / "skill.json"
    broken = readme_package / "broken"
    broken.mkdir(exist_ok=True)
    data = json.loads(manifest.read_text())
    data["config"]["reach"] = -1.0
    data["name"] = "broken"
    (broken / "skill.json").write_text(json.dumps(data))
    (broken / "policy.safetensors").write_bytes(
        (manifest.parent / "policy.safetensors").read_bytes()
    )
    assert main(["skills", "verify", str(broken)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "config.reach" in error

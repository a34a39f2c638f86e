"""``hrl compare adapt`` plans every condition with the meta skill's recommended MPPI settings."""

from __future__ import annotations

import pytest

from hrl_runtime.errors import ConfigError


def test_every_condition_plans_with_the_given_mppi_settings():
    from envs.perturb import Perturbation
    from hrl_runtime.experiments.adapt_compare import AdaptCompareConfig, run_condition
    from hrl_runtime.registry import load_skill

    skill = load_skill("dads-pointmass")
    config = AdaptCompareConfig(goals=1, asynchronous=False)
    body = Perturbation(gain=0.4, mirror="x")
    # A setting the planner refuses shows that the settings reach it, in every condition.
    for condition in ("plain", "plain+finetune"):
        with pytest.raises(ConfigError, match="horizon"):
            run_condition(condition, skill, body, config, 0, None, {"horizon": 0})


def test_the_plain_skill_defaults_to_the_one_the_meta_skill_was_trained_from(tmp_path):
    import json
    import shutil

    from hrl_runtime.experiments.adapt_compare import base_skill_ref
    from hrl_runtime.registry import SkillRegistry

    assert base_skill_ref("dads-pointmass-meta") == "dads-pointmass-open"
    copy = tmp_path / "meta"
    shutil.copytree(SkillRegistry().resolve("dads-pointmass-meta").path, copy)
    assert base_skill_ref(str(copy)) == "dads-pointmass-open"
    manifest = json.loads((copy / "skill.json").read_text())
    del manifest["training"]["config"]["skill"]
    (copy / "skill.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="--plain-skill"):
        base_skill_ref(str(copy))

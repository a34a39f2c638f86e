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

"""Contract tests over every skill package shipped with the project."""

from __future__ import annotations

import numpy as np
import pytest

from hrl_runtime import Skill, SkillRegistry
from hrl_runtime.registry import load_package

SHIPPED = [e for e in SkillRegistry().list() if e.source == "shipped" and e.role == "skill"]


def test_the_required_skills_are_shipped():
    assert {"scripted-reach", "dads-pointmass"} <= {e.name for e in SHIPPED}


@pytest.fixture(params=SHIPPED, ids=lambda e: e.ref)
def shipped(request):
    return request.param, load_package(request.param.path)


def _samples(skill: Skill, count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(count, *skill.observation_space.shape)).astype(np.float32) * 2
    low, high = skill.command_space.low, skill.command_space.high
    commands = rng.uniform(low, high, size=(count, *skill.command_space.shape)).astype(np.float32)
    return obs, commands


def test_spaces_and_actions(shipped):
    entry, skill = shipped
    assert isinstance(skill, Skill) and skill.name == entry.name
    assert skill.hold_steps >= 1
    assert np.all(np.isfinite(skill.command_space.low)) and np.all(
        np.isfinite(skill.command_space.high)
    )
    obs, commands = _samples(skill, 32)
    skill.reset()
    for o, c in zip(obs, commands, strict=True):
        skill.reset()
        action = skill.act(o, c)
        assert action.shape == skill.action_space.shape
        assert np.all(np.isfinite(action)) and skill.action_space.contains(
            action.astype(np.float32)
        )
    batch = skill.act_batch(obs, commands)
    assert batch.shape == (32, *skill.action_space.shape)
    for index in range(32):
        skill.reset()
        np.testing.assert_allclose(batch[index], skill.act(obs[index], commands[index]), atol=1e-5)


def test_dynamics_component(shipped):
    _, skill = shipped
    if skill.dynamics is None:
        pytest.skip("no dynamics")
    obs, commands = _samples(skill, 16)
    states = skill.dynamics.state_of(obs)
    predicted = skill.dynamics.predict(states, commands)
    assert predicted.shape == states.shape and np.all(np.isfinite(predicted))


def test_reload_is_bit_identical(shipped, tmp_path):
    _, skill = shipped
    copy = SkillRegistry([tmp_path]).save(skill, tmp_path / "copy", name="copy", version="1.0")
    again = load_package(copy)
    obs, commands = _samples(skill, 16, seed=1)
    for o, c in zip(obs, commands, strict=True):
        skill.reset()
        again.reset()
        assert skill.act(o, c).tobytes() == again.act(o, c).tobytes()


def test_manifest_records_how_it_was_made(shipped):
    entry, _ = shipped
    assert entry.manifest["training"].get("command")
    assert entry.manifest["metrics"]

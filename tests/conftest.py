"""Shared fixtures: a headless environment for every test (thread pools are the runtime's own)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np
import pytest
from gymnasium.spaces import Box

from skill_library.scripted import ReachConfig, ScriptedReachSkill


@pytest.fixture
def reach_skill() -> ScriptedReachSkill:
    """The scripted reach skill on the point-mass observation layout [x, y, vx, vy]."""
    obs_space = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
    act_space = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    return ScriptedReachSkill(ReachConfig(), obs_space, act_space)


@pytest.fixture
def isolated_search_path(tmp_path, monkeypatch):
    """A registry search path with only the shipped skills and an empty user directory."""
    monkeypatch.setenv("HRL_SKILLS_PATH", str(tmp_path / "extra"))
    monkeypatch.setattr("platformdirs.user_data_dir", lambda *a, **k: str(tmp_path / "user"))
    return tmp_path

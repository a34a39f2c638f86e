"""The reliability table of issue 7, one test (or parameter) per row, each row asserted.

| row                                   | test                                                  |
|---------------------------------------|-------------------------------------------------------|
| NaN/inf observation                   | test_nonfinite_observation_is_held_and_counted        |
| NaN/inf/out-of-range action           | test_bad_actions_fall_back_or_are_clipped             |
| a skill that raises                   | test_a_skill_that_raises_is_replaced_in_the_same_tick |
| a planner slower than the control rate| test_a_slow_planner_does_not_slow_the_loop            |
| a stale plan                          | test_a_stale_plan_falls_back_then_stops               |
| no plan at start                      | test_no_plan_at_start_sends_the_safe_action           |
| repeated misses -> safe stop          | test_repeated_deadline_misses_latch_the_safe_stop     |
| simulator divergence                  | test_simulator_divergence_is_a_fault_not_a_reset      |
| malformed messages, wrong sizes       | test_malformed_server_requests_get_explicit_errors    |
| tampered or pickled skill package     | test_tampered_or_pickled_package_is_refused_*         |
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from gymnasium.spaces import Box

from hrl_runtime import HighLevel, Skill, SkillRegistry
from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig
from hrl_runtime.cli import main as hrl_main
from hrl_runtime.registry import sha256_of
from hrl_runtime.safety import SafetyConfig
from hrl_runtime.serving.server import PolicyServer, ServerConfig

FAST = {"control_rt_priority": None, "gc_disable": False}


class ScriptSkill(Skill):
    """Returns scripted actions per call; an Exception entry is raised."""

    kind = "test_script"

    def __init__(self, script):
        box = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        act = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        super().__init__(box, Box(-1.0, 1.0, shape=(2,), dtype=np.float32), act, 1)
        self.script = list(script)
        self.calls = 0

    def reset(self):
        self.calls = 0

    def act(self, obs, command):
        item = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        return np.asarray(item, np.float64)

    package_spaces = package_config = package_tensors = from_package = None


class ConstantPlanner(HighLevel):
    """Plans a constant command; optimize can be slowed down or stalled."""

    def __init__(self, delay_s=0.0, stall_after=None, first_delay_s=0.0):
        self.mean = np.full((2, 2), 0.5, np.float32)
        self.delay_s, self.stall_after, self.first_delay_s = delay_s, stall_after, first_delay_s
        self.optimizations = 0

    def set_state(self, obs):
        pass

    def optimize(self):
        self.optimizations += 1
        if self.optimizations == 1:
            time.sleep(self.first_delay_s)
        if self.stall_after is not None and self.optimizations > self.stall_after:
            time.sleep(2.0)
        time.sleep(self.delay_s)
        self.mean[:, 1] = self.optimizations / 1000.0

    def command(self, obs, t):
        return self.mean[0]


class Plant:
    """A 2-D integrator; may return scripted observations, sleep, or report physics warnings."""

    def __init__(self, bad_obs_at=None, step_sleep_s=0.0):
        self.action_space = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.bad_obs_at = bad_obs_at or {}
        self.step_sleep_s = step_sleep_s
        self.received: list[np.ndarray] = []

    def reset(self, *, seed=None, options=None):
        self.state = np.zeros(4, np.float32)
        return self.state.copy(), {}

    def step(self, action):
        self.received.append(np.array(action))
        time.sleep(self.step_sleep_s)
        self.state[:2] += 0.01 * np.asarray(action, np.float32)
        obs = self.bad_obs_at.get(len(self.received), self.state.copy())
        return obs, 0.0, False, False, {}


def run(skill, planner, plant, steps, **config):
    safety = config.pop("safety", SafetyConfig())
    with AsyncControlLoop(skill, planner, AsyncLoopConfig(**FAST, safety=safety, **config)) as loop:
        return loop.run(plant, max_steps=steps, seed=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_observation_is_held_and_counted(bad):
    obs = np.array([0.0, bad, 0.0, 0.0], np.float32)
    plant = Plant(bad_obs_at={3: obs, 4: obs})
    result = run(ScriptSkill([[0.3, -0.2]]), ConstantPlanner(), plant, 8)
    assert result.faults == {"total": 2, "nonfinite_observation": 2}
    sent = np.asarray(plant.received)
    assert np.all(np.isfinite(sent))
    # Ticks 3 and 4 saw the bad observation and held the last safe action.
    np.testing.assert_allclose(sent[3:5], [[0.3, -0.2], [0.3, -0.2]], atol=1e-6)
    assert result.safe_stop is None and result.steps == 8


def test_bad_actions_fall_back_or_are_clipped():
    script = [[0.2, 0.1], [np.nan, 0.0], [np.inf, 0.0], [0.0, -np.inf], [5.0, -3.0], [0.1, 0.1]]
    plant = Plant()
    result = run(ScriptSkill(script), ConstantPlanner(), plant, 6)
    assert result.faults == {"total": 3, "nonfinite_action": 3}
    sent = np.asarray(plant.received)
    np.testing.assert_allclose(sent[1:4], [[0.2, 0.1]] * 3, atol=1e-6)  # held in the same tick
    np.testing.assert_allclose(sent[4], [1.0, -1.0])  # out of range: clipped, not a fault
    assert result.clipped_steps == 1
    assert np.all(np.abs(sent) <= 1.0)


def test_a_skill_that_raises_is_replaced_in_the_same_tick():
    script = [[0.4, 0.4], RuntimeError("policy crashed"), [0.1, 0.0]]
    plant = Plant()
    safety = SafetyConfig(fallback="zero")
    result = run(ScriptSkill(script), ConstantPlanner(), plant, 4, safety=safety)
    assert result.faults == {"total": 1, "skill_exception": 1}
    assert result.fault_events[0].step == 1
    assert "policy crashed" in result.fault_events[0].detail
    sent = np.asarray(plant.received)
    np.testing.assert_allclose(sent[1], [0.0, 0.0])  # the zero fallback, same tick
    np.testing.assert_allclose(sent[2], [0.1, 0.0], atol=1e-6)  # and back to the skill


class CommandEcho(ScriptSkill):
    def act(self, obs, command):
        return np.asarray(command, np.float64)


def test_a_slow_planner_does_not_slow_the_loop():
    planner = ConstantPlanner(delay_s=0.04)  # 25 Hz planner, 100 Hz loop
    plant = Plant()
    result = run(CommandEcho([[0, 0]]), planner, plant, 60, max_plan_age_s=1.0)
    assert result.steps == 60 and result.faults == {"total": 0}
    assert 0 < result.planner_rate_hz < 60
    # Several ticks ran on each plan: the loop never waited for the planner.
    plans_used = len(set(np.round(np.asarray(plant.received)[:, 1], 4)))
    assert plans_used < result.steps / 2


def test_a_stale_plan_falls_back_then_stops():
    planner = ConstantPlanner(stall_after=1)  # one plan, then the planner hangs
    plant = Plant()
    safety = SafetyConfig(safe_stop_after=5)
    result = run(CommandEcho([[0, 0]]), planner, plant, 100, max_plan_age_s=0.05, safety=safety)
    assert result.faults["stale_plan"] >= 5
    assert result.safe_stop is not None and "stale_plan" in result.safe_stop.reason
    assert result.stop_reason == "safe_stop"
    np.testing.assert_allclose(plant.received[-1], [0.0, 0.0])  # the stop action went out
    assert result.steps < 100


def test_no_plan_at_start_sends_the_safe_action():
    planner = ConstantPlanner(first_delay_s=0.1)
    plant = Plant()
    result = run(
        CommandEcho([[0, 0]]), planner, plant, 40, first_plan_timeout_s=0.0, max_plan_age_s=0.5
    )
    assert result.no_plan_ticks >= 3
    assert result.faults == {"total": 0}
    sent = np.asarray(plant.received)
    np.testing.assert_allclose(sent[: result.no_plan_ticks], 0.0)  # safe action until a plan
    assert np.all(sent[-5:, 0] == pytest.approx(0.5))  # then the plan's commands


def test_repeated_deadline_misses_latch_the_safe_stop():
    plant = Plant(step_sleep_s=0.025)  # every tick overruns its 10 ms period
    safety = SafetyConfig(safe_stop_after=3)
    result = run(CommandEcho([[0, 0]]), ConstantPlanner(), plant, 50, safety=safety)
    assert result.stop_reason == "safe_stop"
    assert "deadline_miss" in result.safe_stop.reason
    assert result.skipped_cycles >= 2  # missed cycles were skipped, not burst through
    assert result.deadline_misses >= result.skipped_cycles
    assert result.steps <= 4


def test_simulator_divergence_is_a_fault_not_a_reset(reach_skill, tmp_path, monkeypatch):
    import envs

    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory
    from planners import GoalSequence, SequenceConfig

    env = envs.make_env("hrl/PointArena-v0", max_episode_steps=200)
    sequence = GoalSequence(np.array([[2.0, 2.0]]), (0, 1), SequenceConfig(0.3, 1000))

    def corrupt(step, action, obs, info):
        if step == 5:  # blow up the state: MuJoCo flags bad qvel/qacc on the next step
            env.unwrapped.data.qvel[:] = 1e30

    with AsyncControlLoop(reach_skill, sequence, AsyncLoopConfig(**FAST)) as loop:
        result = loop.run(env, max_steps=100, seed=0, on_step=corrupt)
    assert result.faults.get("physics_warning") == 1
    assert result.stop_reason == "terminated" and result.steps == 7
    assert (
        "mjWARN" in result.fault_events[-1].detail or "non_finite" in result.fault_events[-1].detail
    )


# --- the server --------------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path):
    server = PolicyServer(ServerConfig(port=0, skill="scripted-reach", planner="sequence"))
    yield server
    server.close()


def _call(server, message, payload=None):
    frames = [json.dumps(message).encode() if isinstance(message, dict) else message]
    if payload is not None:
        frames.append(payload)
    return server.handle(frames)


def test_malformed_server_requests_get_explicit_errors(server):
    cases = [
        ([b"\xff\xfe not json"], "malformed"),
        ([b"[1, 2, 3]"], "malformed"),
        ([b"{}", b"12345678", b"extra"], "malformed"),
        ([b'{"call": "fly"}'], "unknown_call"),
        ([b'{"call": "get_action", "obs": [0, 0, 0, 0]}'], "not_initialized"),
        ([b'{"call": "reset", "obs": [0, 0, 0, 0]}'], "not_initialized"),
    ]
    for frames, code in cases:
        reply = server.handle(frames)
        assert reply["ok"] is False and reply["error"]["code"] == code, (frames, reply)
    assert _call(server, {"call": "status"})["initialized"] is False
    assert _call(server, {"call": "init", "goals": "north"})["error"]["code"] == "bad_field"
    reply = _call(server, {"call": "init", "goals": [[1.0, 0.5]]})
    assert reply["ok"], reply
    assert reply["observation_dim"] == 4 and reply["action_dim"] == 2
    assert _call(server, {"call": "get_action", "obs": [0, 0, 0, 0]})["error"]["code"] == (
        "not_started"
    )
    assert _call(server, {"call": "reset", "obs": [0, 0, 0]})["error"]["code"] == "bad_size"
    assert _call(server, {"call": "reset", "obs": [0, 0, 0, 0]})["ok"]
    # Wrong sizes (JSON and binary), non-finite values, non-numbers: explicit errors, and the
    # observation errors of get_action still carry the safe action.
    reply = _call(server, {"call": "get_action", "obs": [0.0, 0.0]})
    assert reply["error"]["code"] == "bad_size" and len(reply["action"]) == 2
    reply = _call(server, {"call": "get_action"}, b"\x00" * 7)
    assert reply["error"]["code"] == "bad_size"
    reply = _call(server, {"call": "get_action"}, np.zeros(5).tobytes())
    assert reply["error"]["code"] == "bad_size"
    reply = server.handle([b'{"call": "get_action", "obs": [0, NaN, 0, 0]}'])
    assert reply["error"]["code"] == "non_finite" and np.all(np.isfinite(reply["action"]))
    reply = _call(server, {"call": "get_action", "obs": [0, "x", 0, 0]})
    assert reply["error"]["code"] == "bad_field"
    reply = _call(server, {"call": "set_state", "obs": [0, 0, 1e309, 0]})  # 1e309 -> inf
    assert reply["error"]["code"] == "non_finite"
    # The server kept running and counted the bad observations as faults.
    reply = _call(server, {"call": "get_action"}, np.zeros(4, "<f8").tobytes())
    assert reply["ok"] and reply["status"] == "ok"
    status = _call(server, {"call": "status"})
    assert status["faults"]["nonfinite_observation"] == 1
    assert status["faults"]["bad_observation_shape"] == 2


def _copy_reach_package(tmp_path: Path) -> Path:
    source = SkillRegistry().resolve("scripted-reach").path
    target = tmp_path / "reach-copy"
    shutil.copytree(source, target)
    return target


class _Boobytrap:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _rehash(package: Path, file: str) -> None:
    manifest = json.loads((package / "skill.json").read_text())
    manifest["weights"][file]["sha256"] = sha256_of(package / file)
    (package / "skill.json").write_text(json.dumps(manifest))


def _rename(package: Path, name: str) -> Path:
    manifest = json.loads((package / "skill.json").read_text())
    manifest["name"] = name
    (package / "skill.json").write_text(json.dumps(manifest))
    return package


def test_tampered_or_pickled_package_is_refused_by_the_server(server, tmp_path, monkeypatch):
    # The server loads packages by name from the search path only: put the copies there.
    monkeypatch.setenv("HRL_SKILLS_PATH", str(tmp_path / "t") + os.pathsep + str(tmp_path / "p"))
    tampered = _rename(_copy_reach_package(tmp_path / "t"), "reach-tampered")
    data = bytearray((tampered / "policy.safetensors").read_bytes())
    data[-1] ^= 0x01
    (tampered / "policy.safetensors").write_bytes(bytes(data))
    reply = _call(server, {"call": "init", "skill": str(tampered), "goals": [[1.0, 0.0]]})
    assert reply["error"]["code"] == "forbidden"  # a client never names a directory
    reply = _call(server, {"call": "init", "skill": "reach-tampered", "goals": [[1.0, 0.0]]})
    assert (
        reply["error"]["code"] == "init_failed" and "SHA-256 mismatch" in reply["error"]["message"]
    )

    pickled = _rename(_copy_reach_package(tmp_path / "p"), "reach-pickled")
    marker = tmp_path / "unpickled"
    (pickled / "policy.safetensors").write_bytes(pickle.dumps(_Boobytrap(marker)))
    _rehash(pickled, "policy.safetensors")
    reply = _call(server, {"call": "init", "skill": "reach-pickled", "goals": [[1.0, 0.0]]})
    assert reply["error"]["code"] == "init_failed"
    assert "never unpickles" in reply["error"]["message"]
    assert not marker.exists()
    assert _call(server, {"call": "status"})["ok"]  # still serving


def test_tampered_package_is_refused_by_hrl_run(tmp_path, capsys):
    tampered = _copy_reach_package(tmp_path)
    data = bytearray((tampered / "policy.safetensors").read_bytes())
    data[-1] ^= 0x01
    (tampered / "policy.safetensors").write_bytes(bytes(data))
    task = tmp_path / "task.toml"
    task.write_text(
        '[task]\nenv = "hrl/PointArena-v0"\n[[steps]]\n'
        f'skill = "{tampered}"\nhigh_level = "sequence"\ngoal = [1.0, 0.0]\ntimeout_s = 1.0\n'
    )
    assert hrl_main(["run", str(task)]) == 2
    error = capsys.readouterr().err
    assert "SHA-256 mismatch" in error and "policy.safetensors" in error

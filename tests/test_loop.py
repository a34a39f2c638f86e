"""ControlLoop: nothing non-finite reaches the plant, actions are clipped, latencies recorded."""

from __future__ import annotations

import time

import numpy as np
import pytest
from gymnasium.spaces import Box

from hrl_runtime import ControlLoop, HierarchicalAgent, HighLevel, LoopConfig


class RecordingPlant:
    """A 2-D integrator that records every action it receives; can emit scripted observations."""

    def __init__(self, bad_obs_at: dict[int, np.ndarray] | None = None, info_at=None):
        self.action_space = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.received: list[np.ndarray] = []
        self.bad_obs_at = bad_obs_at or {}
        self.info_at = info_at or {}
        self.state = np.zeros(4, np.float32)

    def reset(self, *, seed=None, options=None):
        self.received.clear()
        self.state = np.array([1.0, -1.0, 0.0, 0.0], np.float32)
        return self.state.copy(), {}

    def step(self, action):
        self.received.append(np.array(action, copy=True))
        self.state[:2] += 0.01 * np.asarray(action, np.float32)
        step = len(self.received)
        obs = self.bad_obs_at.get(step, self.state.copy())
        return obs, 0.0, False, False, dict(self.info_at.get(step, {}))


class ScriptedAgent:
    """Returns actions from a script; entries may be exceptions to raise."""

    def __init__(self, script):
        self.script = list(script)
        self.seen: list[np.ndarray] = []
        self.last_planner_latency_s = float("nan")
        self.done = False

    def reset(self, obs):
        self.seen.clear()

    def act(self, obs):
        self.seen.append(np.array(obs))
        item = self.script[min(len(self.seen) - 1, len(self.script) - 1)]
        if isinstance(item, Exception):
            raise item
        return np.asarray(item, np.float64)


def run(agent, plant, steps=6, **config):
    return ControlLoop(LoopConfig(**config)).run(agent, plant, max_steps=steps, seed=0)


def test_nan_observation_never_produces_nan_action():
    nan_obs = np.array([np.nan, 0.0, 0.0, 0.0], np.float32)
    inf_obs = np.array([0.0, np.inf, 0.0, 0.0], np.float32)
    plant = RecordingPlant(bad_obs_at={2: nan_obs, 3: inf_obs})
    agent = ScriptedAgent([[0.3, -0.2]])
    result = run(agent, plant, steps=6)
    sent = np.stack(plant.received)
    assert np.all(np.isfinite(sent))
    # Steps 2 and 3 saw bad observations: the agent was not asked; the last safe action was held.
    assert len(agent.seen) == 4
    np.testing.assert_array_equal(sent[2], sent[1])
    np.testing.assert_array_equal(sent[3], sent[1])
    assert result.fault_counts() == {"nonfinite_observation": 2}


@pytest.mark.parametrize("bad", [[np.nan, 0.0], [0.0, np.inf], [-np.inf, 1.0]])
def test_nonfinite_action_is_replaced_by_last_safe_action(bad):
    plant = RecordingPlant()
    result = run(ScriptedAgent([[0.5, 0.5], bad, [0.1, 0.1]]), plant, steps=3)
    sent = np.stack(plant.received)
    np.testing.assert_array_equal(sent[1], sent[0])
    np.testing.assert_allclose(sent[2], [0.1, 0.1], rtol=1e-6)
    assert result.fault_counts() == {"nonfinite_action": 1}


def test_first_action_fault_sends_zero():
    plant = RecordingPlant()
    run(ScriptedAgent([[np.nan, np.nan], [0.2, 0.2]]), plant, steps=2)
    np.testing.assert_array_equal(plant.received[0], [0.0, 0.0])


def test_actions_are_clipped_to_the_action_space():
    plant = RecordingPlant()
    result = run(ScriptedAgent([[5.0, -3.0], [0.2, -0.2]]), plant, steps=2)
    np.testing.assert_array_equal(plant.received[0], [1.0, -1.0])
    np.testing.assert_allclose(plant.received[1], [0.2, -0.2], rtol=1e-6)
    assert result.clipped_steps == 1
    assert result.faults == []


def test_agent_exception_and_wrong_shape_are_contained():
    plant = RecordingPlant()
    agent = ScriptedAgent([[0.4, 0.4], RuntimeError("skill crashed"), [0.1, 0.2, 0.3], [0.0, 0.1]])
    result = run(agent, plant, steps=4)
    sent = np.stack(plant.received)
    assert result.steps == 4
    np.testing.assert_array_equal(sent[1], sent[0])
    np.testing.assert_array_equal(sent[2], sent[0])
    assert result.fault_counts() == {"agent_exception": 1, "bad_action_shape": 1}
    assert "skill crashed" in result.faults[0].detail


def test_physics_warning_is_a_fault():
    plant = RecordingPlant(info_at={2: {"physics_warning": "mjWARN_BADQACC"}})
    result = run(ScriptedAgent([[0.0, 0.0]]), plant, steps=3)
    assert result.fault_counts() == {"physics_warning": 1}


class FixedGoal(HighLevel):
    def __init__(self):
        self.optimized = 0

    def set_state(self, obs):
        self.obs = obs

    def optimize(self):
        self.optimized += 1

    def command(self, obs, t):
        return np.array([3.0, 3.0], np.float32)


def test_latencies_are_recorded(reach_skill):
    plant = RecordingPlant()
    high_level = FixedGoal()
    agent = HierarchicalAgent(high_level, reach_skill, replan_every=5)
    result = run(agent, plant, steps=20)
    assert result.control_latency_s.shape == (20,)
    assert np.all(result.control_latency_s > 0)
    planned = np.isfinite(result.planner_latency_s)
    np.testing.assert_array_equal(np.flatnonzero(planned), [0, 5, 10, 15])
    assert np.all(result.planner_latency_s[planned] >= 0)
    assert high_level.optimized == 4
    summary = result.summary()
    assert set(summary["control_latency_ms"]) >= {"p50", "p99", "max"}
    assert summary["planner_latency_ms"]["count"] == 4


def test_slow_agent_counts_deadline_misses():
    class SlowAgent(ScriptedAgent):
        def act(self, obs):
            time.sleep(0.004)
            return super().act(obs)

    result = run(SlowAgent([[0.0, 0.0]]), RecordingPlant(), steps=3, control_period_s=0.001)
    assert result.deadline_misses == 3


def test_stops_when_the_agent_is_done():
    agent = ScriptedAgent([[0.0, 0.0]])
    plant = RecordingPlant()

    class Stopper:
        def __getattr__(self, name):
            return getattr(agent, name)

        @property
        def done(self):
            return len(agent.seen) >= 3

    result = run(Stopper(), plant, steps=50)
    assert result.steps == 3
    assert result.stop_reason == "done"


def test_runs_on_a_real_mujoco_plant(reach_skill):
    import envs

    env = envs.make_env("hrl/PointArena-v0")
    agent = HierarchicalAgent(FixedGoal(), reach_skill)
    result = ControlLoop(LoopConfig(control_period_s=env.unwrapped.dt)).run(
        agent, env, max_steps=400, seed=3
    )
    assert np.all(np.isfinite(result.observations))
    assert np.linalg.norm(result.observations[-1, :2] - 3.0) < 0.5
    assert result.faults == []

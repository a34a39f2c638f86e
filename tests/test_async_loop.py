"""AsyncControlLoop: plans are immutable snapshots, planners live on their own thread, goals cross
threads through the proxy, and a 100 Hz loop runs and counts what it should."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from gymnasium.spaces import Box

from hrl_runtime import HighLevel, Skill
from hrl_runtime.async_loop import AsyncControlLoop, AsyncLoopConfig, Plan
from planners import GoalSequence, SequenceConfig

FAST = {"control_rt_priority": None, "gc_disable": False}


class CommandSkill(Skill):
    """Action = the command itself (clipped by the loop): what the loop sent is what was planned."""

    kind = "test_command"

    def __init__(self, hold_steps: int = 2):
        box = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        act = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        super().__init__(box, Box(-1.0, 1.0, shape=(2,), dtype=np.float32), act, hold_steps)

    def act(self, obs, command):
        return np.asarray(command, np.float64)

    package_spaces = package_config = package_tensors = from_package = None


class CountingPlanner(HighLevel):
    """A planner whose nominal plan ``mean: (T, 2)`` encodes how many optimizations ran."""

    def __init__(self):
        self.mean = np.zeros((3, 2), np.float32)
        self.optimizations = 0
        self.goals: list[np.ndarray] = []
        self.threads: set[int] = set()

    def reset(self, obs):
        self.threads.add(threading.get_ident())
        self.mean[:] = 0.0

    def set_state(self, obs):
        self.threads.add(threading.get_ident())

    def set_goal(self, goal):
        self.threads.add(threading.get_ident())
        self.goals.append(np.array(goal))

    def optimize(self):
        self.threads.add(threading.get_ident())
        self.optimizations += 1
        self.mean[:, 0] = min(self.optimizations, 900) / 1000.0
        self.mean[:, 1] = np.arange(3) / 10.0

    def command(self, obs, t):
        return self.mean[0]


class GoalPlanner(CountingPlanner):
    """Plans a proportional step toward its goal from the last state it was given."""

    def set_state(self, obs):
        super().set_state(obs)
        self.xy = np.asarray(obs[:2], np.float32)

    def optimize(self):
        self.threads.add(threading.get_ident())
        self.mean[:] = np.clip(20.0 * (self.goals[-1] - self.xy), -1.0, 1.0)


class Integrator:
    """x-y integrator plant: obs = [x, y, vx, vy]."""

    def __init__(self):
        self.action_space = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.received: list[np.ndarray] = []

    def reset(self, *, seed=None, options=None):
        self.state = np.zeros(4, np.float32)
        return self.state.copy(), {}

    def step(self, action):
        self.received.append(np.array(action))
        self.state[:2] += 0.05 * np.asarray(action, np.float32)
        return self.state.copy(), 0.0, False, False, {}


def test_plan_snapshot_indexes_by_hold_steps_and_holds_the_last_entry():
    commands = np.arange(6, dtype=np.float32).reshape(3, 2)
    commands.setflags(write=False)
    plan = Plan(
        commands, step=10, observed_at=0.0, episode=1, goal_version=1, hold_steps=4, latency_s=0.0
    )
    # steps 10..13 -> entry 0, 14..17 -> entry 1, 18.. -> entry 2 (held), before 10 -> entry 0
    expected = {8: 0, 10: 0, 13: 0, 14: 1, 17: 1, 18: 2, 40: 2}
    for step, entry in expected.items():
        np.testing.assert_array_equal(plan.command_at(step), commands[entry])
    with pytest.raises(ValueError):
        plan.commands[0, 0] = 1.0  # snapshots are immutable


def test_loop_runs_at_100_hz_with_plans_from_the_planner_thread():
    planner = CountingPlanner()
    plant = Integrator()
    config = AsyncLoopConfig(**FAST)
    with AsyncControlLoop(CommandSkill(), planner, config) as loop:
        result = loop.run(plant, max_steps=60, seed=0)
        assert loop.planner is planner and loop.worker is not None
    assert result.steps == 60 and result.stop_reason == "max_steps"
    assert result.faults == {"total": 0} and result.safe_stop is None
    assert result.no_plan_ticks == 0  # the first plan was made before the first tick
    # The planner never ran on the control thread, and it did plan during the run.
    assert threading.get_ident() not in planner.threads
    assert result.planner_latency_s.size >= 1 and result.planner_rate_hz > 0
    # Every action sent is a published plan's command: x = optimizations / 1000 > 0.
    sent = np.asarray(plant.received)
    assert np.all(sent[:, 0] > 0) and np.all(sent[:, 0] <= 0.9)
    assert set(np.round(sent[:, 1].astype(float), 3).tolist()) <= {0.0, 0.1, 0.2}
    assert np.all(np.isfinite(result.control_latency_s))
    assert np.all(np.isfinite(result.plan_age_s))  # every tick used a plan


def test_goal_sequencing_runs_on_the_control_path_and_goals_reach_the_planner_thread():
    planner = GoalPlanner()
    goals = np.array([[0.05, 0.0], [0.1, 0.0], [0.15, 0.0]])
    sequence = GoalSequence(goals, (0, 1), SequenceConfig(0.02, 1000), delegate=planner)
    plant = Integrator()
    with AsyncControlLoop(CommandSkill(), sequence, AsyncLoopConfig(**FAST)) as loop:
        assert sequence.delegate is loop.proxy  # the wrapper talks to the proxy while running
        result = loop.run(plant, max_steps=400, seed=0)
    assert sequence.delegate is planner  # and gets its planner back on close
    assert result.stop_reason == "done"
    assert [r["reached"] for r in sequence.summary()["goals"]] == [True, True, True]
    # The planner saw each goal whole, in order, on its own thread only.
    np.testing.assert_allclose(np.asarray(planner.goals), goals)
    assert threading.get_ident() not in planner.threads
    assert len({threading.get_ident(), *planner.threads}) == 2


def test_a_fixed_policy_wrapper_runs_without_a_planner_thread(reach_skill):
    goals = np.array([[0.5, 0.0]])
    sequence = GoalSequence(goals, (0, 1), SequenceConfig(0.3, 1000))
    with AsyncControlLoop(reach_skill, sequence, AsyncLoopConfig(**FAST)) as loop:
        assert loop.worker is None and loop.planner is None
        result = loop.run(Integrator(), max_steps=300, seed=0)
    assert result.stop_reason == "done" and result.faults == {"total": 0}
    assert result.planner_latency_s.size == 0


def test_reset_clears_the_safe_stop_and_counters():
    planner = CountingPlanner()
    with AsyncControlLoop(CommandSkill(), planner, AsyncLoopConfig(**FAST)) as loop:
        loop.reset(np.zeros(4, np.float32))
        loop.safety.latch(0, "test")
        np.testing.assert_array_equal(loop.tick(np.zeros(4, np.float32)), np.zeros(2))
        assert loop.last_status == "safe_stop"
        loop.reset(np.zeros(4, np.float32))
        assert loop.safety.safe_stop is None and loop.step_count == 0
        action = loop.tick(np.zeros(4, np.float32))
        assert loop.last_status == "ok" and action[0] > 0

"""One loop engine: the synchronous loop is the asynchronous one with the planner run inline.

The same scripted agent goes through both loops and must send the same actions and count the same
faults; warm start and delegation are named parts of the HighLevel contract, checked for every
high level that ships.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box

from hrl_runtime import (
    AsyncControlLoop,
    AsyncLoopConfig,
    ControlLoop,
    HierarchicalAgent,
    HighLevel,
    LoopConfig,
    SafetyConfig,
    Skill,
    SkillRegistry,
)
from hrl_runtime.high_level import PlanUnavailable
from hrl_runtime.planner_thread import PlannerThread, PlanProxy
from planners import GoalSequence, LatentMPPI, MPPIConfig, SequenceConfig, SubgoalChaining
from planners.spirl import SkillSpacePolicy
from skill_library.sac import TanhGaussianPolicy

FAST = {"control_rt_priority": None, "gc_disable": False}
NAN_OBS_AT = {4, 5}  # plant steps whose observation is NaN
WARNING_AT = 12  # plant step that reports a physics warning


class ScriptedSkill(Skill):
    """Action = command + a per-step script of faults: raises, NaN, out of range."""

    kind = "test_scripted"

    def __init__(self):
        obs = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        box = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        super().__init__(obs, box, box, hold_steps=3)
        self.calls = 0

    def reset(self):
        self.calls = 0

    def act(self, obs, command):
        self.calls += 1
        if self.calls == 8:
            raise RuntimeError("skill crashed")
        if self.calls == 10:
            return np.array([np.nan, 0.0])
        if self.calls == 15:
            return np.array([3.0, -3.0])  # clipped, not a fault
        return np.asarray(command, np.float64)

    package_spaces = package_config = package_tensors = from_package = None


class ScriptedPolicy(HighLevel):
    """Commands that depend on the step and the observation; raises at one step."""

    def __init__(self, planner_in_thread: bool = False):
        self.in_thread = planner_in_thread

    def planning_part(self):
        return self if self.in_thread else None  # None: runs inline in both loops

    def set_state(self, obs):
        self.obs = np.asarray(obs)

    def command(self, obs, t):
        if t == 20:
            raise ValueError("bad plan")
        return np.array([np.sin(0.3 * t), 0.1 * obs[0] - 0.2], np.float32)


class ScriptedPlant:
    """A 2-D integrator with NaN observations and a physics warning at fixed steps."""

    def __init__(self):
        self.action_space = Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.received: list[np.ndarray] = []

    def reset(self, *, seed=None, options=None):
        self.received.clear()
        self.state = np.array([0.5, -0.5, 0.0, 0.0], np.float32)
        return self.state.copy(), {}

    def step(self, action):
        self.received.append(np.array(action, copy=True))
        self.state[:2] += 0.05 * np.asarray(action, np.float32)
        step = len(self.received)
        obs = np.full(4, np.nan, np.float32) if step in NAN_OBS_AT else self.state.copy()
        info = {"physics_warning": "mjWARN_BADQACC"} if step == WARNING_AT else {}
        return obs, 0.0, False, False, info


def run_both(high_level: HighLevel, steps: int = 30):
    skill = ScriptedSkill()
    sync_plant, async_plant = ScriptedPlant(), ScriptedPlant()
    sync = ControlLoop(LoopConfig(control_period_s=0.02)).run(
        HierarchicalAgent(high_level, skill), sync_plant, max_steps=steps, seed=0
    )
    config = AsyncLoopConfig(
        control_period_s=0.02, safety=SafetyConfig(safe_stop_after=None), **FAST
    )
    with AsyncControlLoop(skill, high_level, config) as loop:
        asynchronous = loop.run(async_plant, max_steps=steps, seed=0)
    return sync, np.stack(sync_plant.received), asynchronous, np.stack(async_plant.received)


def test_the_same_scripted_agent_gets_the_same_actions_and_faults_in_both_loops():
    sync, sent_sync, asynchronous, sent_async = run_both(ScriptedPolicy())
    np.testing.assert_array_equal(sent_sync, sent_async)
    expected = {
        "nonfinite_observation": 2,
        "skill_exception": 1,
        "nonfinite_action": 1,
        "high_level_exception": 1,
        "physics_warning": 1,
    }
    assert sync.fault_counts() == expected
    assert asynchronous.faults == {"total": 6, **expected}
    assert sync.clipped_steps == asynchronous.clipped_steps == 1
    assert [(f.step, f.kind) for f in sync.faults] == [
        (f.step, f.kind) for f in asynchronous.fault_events
    ]
    # The faulty ticks held the last safe action; nothing non-finite reached the plant.
    assert np.isfinite(sent_sync).all()
    nan_tick = min(NAN_OBS_AT)
    np.testing.assert_array_equal(sent_sync[nan_tick], sent_sync[nan_tick - 1])


class ConstantPlanner(HighLevel):
    """A planner with a nominal plan that does not change: timing cannot change the actions."""

    def __init__(self):
        self.plan = np.array([[0.4, -0.3], [0.4, -0.3]], np.float32)
        self.advanced: list[int] = []

    def advance(self, executed_steps):
        self.advanced.append(executed_steps)

    def set_state(self, obs):
        pass

    def command(self, obs, t):
        return self.plan[0]

    def nominal_plan(self):
        return self.plan


def test_a_planner_in_its_thread_gives_the_same_actions_as_inline():
    sync, sent_sync, asynchronous, sent_async = run_both(ConstantPlanner())
    np.testing.assert_array_equal(sent_sync, sent_async)
    assert sync.fault_counts() == {k: v for k, v in asynchronous.faults.items() if k != "total"}
    assert asynchronous.no_plan_ticks == 0


def test_warm_start_tells_the_planner_how_many_steps_ran():
    planner = ConstantPlanner()
    skill = ScriptedSkill()
    ControlLoop().run(HierarchicalAgent(planner, skill), ScriptedPlant(), max_steps=13)
    assert planner.advanced == [3, 3, 3, 3]  # replanned every hold_steps = 3 after the first
    planner.advanced.clear()
    config = AsyncLoopConfig(
        control_period_s=0.01, safety=SafetyConfig(safe_stop_after=None), **FAST
    )
    with AsyncControlLoop(skill, planner, config) as loop:
        result = loop.run(ScriptedPlant(), max_steps=40, seed=0)
    # Every optimization after the first learned the steps since the previous plan's observation.
    assert planner.advanced and all(steps >= 1 for steps in planner.advanced)
    assert sum(planner.advanced) <= result.steps


# --- the HighLevel contract, for every high level that ships --------------------------------------
@pytest.fixture(scope="module")
def shipped():
    registry = SkillRegistry()
    return {name: registry.load(name) for name in ("dads-pointmass", "am-maze", "spirl-maze-far")}


def high_levels(shipped, reach_skill):
    """(name, high level, goal or None, what planning_part must return)."""
    mppi = LatentMPPI(shipped["dads-pointmass"], MPPIConfig(num_samples=64, horizon=5))
    chaining = SubgoalChaining(shipped["am-maze"])
    policy = shipped["spirl-maze-far"]
    obs_space = Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
    skill_space = SkillSpacePolicy(
        TanhGaussianPolicy(4, 2, (8,)), obs_space, Box(-1.0, 1.0, (2,), np.float32), 10
    )
    inner = LatentMPPI(reach_skill, MPPIConfig(num_samples=32, horizon=3))
    wrapper = GoalSequence(np.array([[1.0, 1.0]]), (0, 1), SequenceConfig(), delegate=inner)
    bare = GoalSequence(np.array([[1.0, 1.0]]), (0, 1), SequenceConfig())
    return [
        ("mppi", mppi, np.array([1.0, 1.0]), "self"),
        ("chaining", chaining, np.array([0.0, 0.0]), "self"),
        ("spirl_policy", policy, None, "self"),
        ("skill_space_policy", skill_space, None, "self"),
        ("goal_sequence_with_delegate", wrapper, None, inner),
        ("goal_sequence", bare, None, None),
    ]


def test_every_high_level_declares_its_planning_part_and_takes_advance(shipped, reach_skill):
    for name, high_level, goal, part in high_levels(shipped, reach_skill):
        expected = high_level if part == "self" else part
        assert high_level.planning_part() is expected, name
        if part not in ("self", None):  # a wrapper hands its delegate over and takes it back
            stand_in = ConstantPlanner()
            assert high_level.replace_delegate(stand_in) is part, name
            assert high_level.replace_delegate(part) is stand_in, name
        else:
            with pytest.raises(NotImplementedError):
                high_level.replace_delegate(ConstantPlanner())
        obs = np.zeros(high_level_obs_size(high_level), np.float32)
        high_level.reset(obs)
        if goal is not None:
            high_level.set_goal(goal)
        for step in range(0, 40, 10):  # the loops' order: advance, set_state, optimize, command
            if step:
                high_level.advance(10)
            high_level.set_state(obs)
            high_level.optimize()
            command = np.asarray(high_level.command(obs, step))
            assert command.ndim == 1 and np.isfinite(command).all(), name
        plan = high_level.nominal_plan()
        assert plan is None or (plan.ndim == 2 and np.isfinite(plan).all()), name


def high_level_obs_size(high_level) -> int:
    space = getattr(high_level, "observation_space", None)
    if space is not None:
        return space.shape[0]
    skill = getattr(high_level, "skill", None)
    return skill.observation_space.shape[0] if skill is not None else 4


def test_latent_mppi_shifts_only_whole_executed_entries(reach_skill):
    planner = LatentMPPI(reach_skill, MPPIConfig(num_samples=32, horizon=4))
    hold = reach_skill.hold_steps
    planner.reset(np.zeros(4, np.float32))
    planner.mean[:] = np.arange(8, dtype=np.float32).reshape(4, 2)
    planner.advance(hold - 1)  # not a whole entry: nothing to shift
    planner._warm_start()
    np.testing.assert_array_equal(planner.mean[:, 0], [0, 2, 4, 6])
    planner.advance(2 * hold + 1)  # two whole entries
    planner._warm_start()
    np.testing.assert_array_equal(planner.mean[:, 0], [4, 6, 6, 6])


def test_the_planner_stand_in_raises_plan_unavailable_instead_of_returning_none():
    planner = ConstantPlanner()
    worker = PlannerThread(planner, hold_steps=3, min_period_s=0.01)
    proxy = PlanProxy(worker, max_plan_age_s=0.0)
    proxy.reset(np.zeros(4, np.float32))
    proxy.commit_episode()
    proxy.stamp(time.perf_counter() + 1.0)  # a tick one second after the episode began
    with pytest.raises(PlanUnavailable) as missing:
        proxy.command(np.zeros(4, np.float32), 0)
    assert missing.value.status == "no_plan"


def test_the_skill_space_policy_runs_any_actor_and_holds_its_command():
    actor = torch.nn.Linear(4, 4)

    def split(obs):
        out = actor(obs)
        return out[:, :2], out[:, 2:]

    class Actor(torch.nn.Module):
        def forward(self, obs):
            return split(obs)

    policy = SkillSpacePolicy(
        Actor(), Box(-np.inf, np.inf, (4,), np.float32), Box(-2.0, 2.0, (2,), np.float32), 5
    )
    policy.reset(np.zeros(4, np.float32))
    first = policy.command(np.ones(4, np.float32), 0).copy()
    assert np.all(np.abs(first) <= 2.0)
    np.testing.assert_array_equal(policy.command(np.zeros(4, np.float32), 4), first)  # held

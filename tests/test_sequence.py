"""GoalSequence: advancing on success or budget, bookkeeping, delegation."""

from __future__ import annotations

import numpy as np
import pytest

from hrl_runtime import HighLevel
from planners import GoalSequence, SequenceConfig


def obs_at(x, y):
    return np.array([x, y, 0.0, 0.0], np.float32)


def test_advances_when_reached_and_reports():
    sequence = GoalSequence(np.array([[1.0, 0.0], [2.0, 0.0]]), (0, 1), SequenceConfig(0.5, 100))
    sequence.reset(obs_at(0, 0))
    np.testing.assert_array_equal(sequence.command(obs_at(0, 0), 0), [1.0, 0.0])
    np.testing.assert_array_equal(sequence.command(obs_at(0.6, 0), 1), [2.0, 0.0])
    assert sequence.index == 1
    sequence.command(obs_at(1.9, 0), 2)
    assert sequence.done
    summary = sequence.summary()
    assert summary["success_rate"] == 1.0
    first, second = summary["goals"]
    assert first["reached"] and first["steps"] == 1
    assert first["final_distance"] == pytest.approx(0.4, abs=1e-6)
    assert second["reached"]


def test_moves_on_when_the_budget_is_spent():
    sequence = GoalSequence(np.array([[5.0, 0.0], [0.2, 0.0]]), (0, 1), SequenceConfig(0.5, 3))
    sequence.reset(obs_at(0, 0))
    commands = [sequence.command(obs_at(0, 0), t) for t in range(5)]
    np.testing.assert_array_equal(commands[2], [5.0, 0.0])
    assert sequence.done  # the second goal was already within the radius
    summary = sequence.summary()
    assert [g["reached"] for g in summary["goals"]] == [False, True]
    assert summary["goals"][0]["steps"] == 3
    assert summary["success_rate"] == 0.5


def test_normalized_distance_is_the_mean_over_the_initial_distance():
    sequence = GoalSequence(np.array([[4.0, 0.0]]), (0, 1), SequenceConfig(0.5, 10))
    sequence.reset(obs_at(0, 0))
    for t, x in enumerate([0.0, 2.0]):
        sequence.command(obs_at(x, 0), t)
    record = sequence.summary()["goals"][0]
    assert record["normalized_distance"] == pytest.approx((4.0 + 2.0) / 2 / 4.0)


def test_delegate_gets_goals_and_supplies_commands():
    class Delegate(HighLevel):
        def __init__(self):
            self.goals = []

        def set_state(self, obs):
            pass

        def set_goal(self, goal):
            self.goals.append(np.array(goal))

        def command(self, obs, t):
            return np.array([7.0], np.float32)

    delegate = Delegate()
    sequence = GoalSequence(np.array([[1.0, 0.0], [3.0, 0.0]]), (0, 1), delegate=delegate)
    sequence.reset(obs_at(0, 0))
    assert sequence.command(obs_at(0, 0), 0).tolist() == [7.0]
    sequence.command(obs_at(1.0, 0), 1)
    np.testing.assert_array_equal(np.stack(delegate.goals), [[1.0, 0.0], [3.0, 0.0]])


@pytest.mark.parametrize("goals", [np.zeros((0, 2)), np.zeros((3,)), np.array([[np.nan, 0.0]])])
def test_rejects_malformed_goals(goals):
    with pytest.raises(ValueError, match="goals"):
        GoalSequence(goals, (0, 1))

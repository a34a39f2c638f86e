"""High-level planners and policies: they choose the commands skills follow."""

from planners.factory import PLANNERS, build_goal_follower
from planners.sequence import GoalRecord, GoalSequence, SequenceConfig

__all__ = ["PLANNERS", "GoalRecord", "GoalSequence", "SequenceConfig", "build_goal_follower"]

"""High-level planners and policies: they choose the commands skills follow."""

from planners.factory import PLANNERS, build_goal_follower
from planners.mppi import LatentMPPI, MPPIConfig
from planners.sequence import GoalRecord, GoalSequence, SequenceConfig

__all__ = [
    "PLANNERS",
    "GoalRecord",
    "GoalSequence",
    "LatentMPPI",
    "MPPIConfig",
    "SequenceConfig",
    "build_goal_follower",
]

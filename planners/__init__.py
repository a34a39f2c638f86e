"""High-level planners and policies: they choose the commands skills follow."""

from planners.chaining import ChainingConfig, SubgoalChaining
from planners.factory import PLANNERS, build_goal_follower
from planners.mppi import LatentMPPI, MPPIConfig
from planners.sequence import GoalRecord, GoalSequence, SequenceConfig

__all__ = [
    "PLANNERS",
    "ChainingConfig",
    "GoalRecord",
    "GoalSequence",
    "LatentMPPI",
    "MPPIConfig",
    "SequenceConfig",
    "SubgoalChaining",
    "build_goal_follower",
]

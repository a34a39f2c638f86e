"""Scripted skills: hand-written controllers that need no training."""

from skill_library.scripted.reach import ReachConfig, ReachDynamics, ScriptedReachSkill

__all__ = ["ReachConfig", "ReachDynamics", "ScriptedReachSkill"]

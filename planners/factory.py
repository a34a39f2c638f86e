"""Builds a goal-following high level by name, for the CLI and task runners."""

from __future__ import annotations

import numpy as np

from hrl_runtime.errors import IncompatibleError
from hrl_runtime.skill import Skill
from planners.sequence import GoalSequence, SequenceConfig

PLANNERS = ("sequence",)


def build_goal_follower(
    name: str,
    skill: Skill,
    goals: np.ndarray,
    xy_indices: tuple[int, int],
    config: SequenceConfig,
    seed: int = 0,
) -> GoalSequence:
    """A :class:`GoalSequence` over ``goals: (N, 2)`` whose commands come from planner ``name``.

    Raises:
        IncompatibleError: the planner needs something the skill does not offer.
    """
    label = skill.name or type(skill).__name__
    if name == "sequence":
        if not getattr(skill, "command_is_goal", False):
            raise IncompatibleError(
                f"--planner sequence sends x-y goals as commands, but skill {label!r} takes "
                f"latent commands of shape {skill.command_space.shape}; use --planner mppi "
                "(needs the skill's dynamics)"
            )
        return GoalSequence(goals, xy_indices, config)
    raise IncompatibleError(f"unknown planner {name!r}; choose one of {', '.join(PLANNERS)}")

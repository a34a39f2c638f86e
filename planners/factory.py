"""Builds a goal-following high level by name, for the CLI and task runners."""

from __future__ import annotations

import numpy as np

from hrl_runtime.errors import IncompatibleError
from hrl_runtime.skill import Skill
from planners.mppi import LatentMPPI, MPPIConfig
from planners.sequence import GoalSequence, SequenceConfig

PLANNERS = ("sequence", "mppi", "chaining")


def fitting_planners(skill: Skill) -> str:
    """A sentence naming the planners that fit ``skill``, or what it lacks for any of them."""
    fits = []
    if getattr(skill, "command_is_goal", False):
        fits.append("sequence")
    if skill.dynamics is not None:
        fits.append("mppi")
    has_subgoals = getattr(skill, "subgoals", None) is not None
    if getattr(skill, "command_is_goal", False) and skill.value is not None and has_subgoals:
        fits.append("chaining")
    if fits:
        return "planners that fit it: " + ", ".join(f"--planner {name}" for name in fits)
    return (
        "no goal planner fits it: sequence needs a goal-commanded skill (command_is_goal = True), "
        "mppi needs a dynamics component, chaining a goal-commanded skill with a value and "
        "subgoals; choose such a skill (`hrl skills list`)"
    )


def build_goal_follower(
    name: str,
    skill: Skill,
    goals: np.ndarray,
    xy_indices: tuple[int, int],
    config: SequenceConfig,
    seed: int = 0,
    mppi: MPPIConfig | None = None,
) -> GoalSequence:
    """A :class:`GoalSequence` over ``goals: (N, 2)`` whose commands come from planner ``name``.

    Without ``mppi``, latent MPPI takes the settings the skill recommends
    (:meth:`Skill.planner_settings`) over :class:`MPPIConfig`'s defaults, with ``seed``.

    Raises:
        IncompatibleError: the planner needs something the skill does not offer.
    """
    label = skill.name or type(skill).__name__
    if name == "sequence":
        if not getattr(skill, "command_is_goal", False):
            raise IncompatibleError(
                f"--planner sequence sends x-y goals as commands, but skill {label!r} takes "
                f"latent commands of shape {skill.command_space.shape} (it does not declare "
                f"command_is_goal = True); {fitting_planners(skill)}"
            )
        return GoalSequence(goals, xy_indices, config)
    if name == "mppi":
        dynamics = skill.dynamics
        if dynamics is None:
            raise IncompatibleError(
                f"--planner mppi plans with skill dynamics, and skill {label!r} has none; "
                f"{fitting_planners(skill)}"
            )
        missing = [i for i in xy_indices if i not in dynamics.state_indices]
        if missing:
            raise IncompatibleError(
                f"the dynamics of skill {label!r} predicts observation entries "
                f"{list(dynamics.state_indices)}, not the x-y entries {list(xy_indices)} goals "
                "refer to; use a skill trained with an x-y dynamics state"
            )
        goal_dims = tuple(dynamics.state_indices.index(i) for i in xy_indices)
        if mppi is None:  # the skill package's recommended settings, if any
            mppi = MPPIConfig(**{**skill.planner_settings("mppi"), "seed": seed})
        planner = LatentMPPI(skill, mppi, goal_dims=goal_dims)
        return GoalSequence(goals, xy_indices, config, delegate=planner)
    if name == "chaining":
        from planners.chaining import SubgoalChaining

        return GoalSequence(
            goals, xy_indices, config, delegate=SubgoalChaining(skill, xy_indices=xy_indices)
        )
    raise IncompatibleError(f"unknown planner {name!r}; choose one of {', '.join(PLANNERS)}")

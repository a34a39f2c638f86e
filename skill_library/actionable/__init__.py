"""Actionable Models (Chebotar et al. 2021): offline goal-conditioned Q-learning with hindsight
relabelling, conservative negatives and goal chaining; packaged as a goal-reaching skill."""

from skill_library.actionable.losses import (
    actionable_loss,
    conservative_loss,
    goal_reaching_loss,
    max_q,
    td_targets,
)
from skill_library.actionable.networks import GoalQNetwork, NumpyQ, QNetworkConfig
from skill_library.actionable.skill import ActionableSkill, GoalQValue, PolicyConfig
from skill_library.actionable.train import (
    ActionableConfig,
    GoalRelabeler,
    farthest_point_subset,
    subgoal_links,
    train_actionable,
)

__all__ = [
    "ActionableConfig",
    "ActionableSkill",
    "GoalQNetwork",
    "GoalQValue",
    "GoalRelabeler",
    "NumpyQ",
    "PolicyConfig",
    "QNetworkConfig",
    "actionable_loss",
    "conservative_loss",
    "farthest_point_subset",
    "goal_reaching_loss",
    "max_q",
    "subgoal_links",
    "td_targets",
    "train_actionable",
]

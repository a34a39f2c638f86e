"""Actionable Models (Chebotar et al. 2021): offline goal-conditioned Q-learning with hindsight
relabelling, conservative negatives and goal chaining; packaged as a goal-reaching skill."""

from skill_library import lazy_exports

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
__getattr__ = lazy_exports(
    __name__,
    {
        "ActionableConfig": "config",
        "ActionableSkill": "skill",
        "GoalQNetwork": "networks",
        "GoalQValue": "skill",
        "GoalRelabeler": "train",
        "NumpyQ": "networks",
        "PolicyConfig": "config",
        "QNetworkConfig": "networks",
        "actionable_loss": "losses",
        "conservative_loss": "losses",
        "farthest_point_subset": "train",
        "goal_reaching_loss": "losses",
        "max_q": "losses",
        "subgoal_links": "train",
        "td_targets": "losses",
        "train_actionable": "train",
    },
)

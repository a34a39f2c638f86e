"""Long-horizon task files: TOML files naming skill steps, validated (:mod:`.spec`) and run in the
asynchronous control loop (:mod:`.runner`). Shipped examples live in ``examples/``."""

from hrl_runtime.taskfiles.runner import StepReport, TaskReport, plot_task, run_task
from hrl_runtime.taskfiles.spec import Task, TaskStep, find_task, load_task, shipped_tasks

__all__ = [
    "StepReport",
    "Task",
    "TaskReport",
    "TaskStep",
    "find_task",
    "load_task",
    "plot_task",
    "run_task",
    "shipped_tasks",
]

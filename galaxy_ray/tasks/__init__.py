"""What a model predicts: one :class:`~galaxy_ray.tasks.base.Task` per task, and the registry.

``gz2``
    Kaggle's 37 cumulative GZ2 vote fractions, consistent with the decision tree.
``votes``
    Dirichlet concentrations over a Galaxy Zoo tree's answers, trained on vote counts.
``classes``
    Class probabilities.
``regression``
    One or more numeric label columns (a vote fraction, a redshift), mean squared error.

A spec stores its task by name (``ModelSpec.task``); :func:`get` gives the task that
owns what the name means.  Importing this package imports no torch.
"""

from __future__ import annotations

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.tasks.base import ReportTruth, Task
from galaxy_ray.tasks.classes import ClassesTask
from galaxy_ray.tasks.gz2 import GZ2Task
from galaxy_ray.tasks.regression import RegressionTask
from galaxy_ray.tasks.votes import VotesTask

__all__ = ["DEFAULT_TASK", "TASKS", "ReportTruth", "Task", "get", "of"]

#: Every task by its ``--task`` name, in the order the help lists them.
REGISTRY: dict[str, Task] = {task.name: task for task in (GZ2Task(), VotesTask(), ClassesTask(), RegressionTask())}
TASKS: tuple[str, ...] = tuple(REGISTRY)
#: ``--task``'s default.
DEFAULT_TASK = GZ2Task.name


def get(name: str) -> Task:
    """The task called ``name``.

    Raises
    ------
    GalaxyRayError
        An unknown name (one line listing the known ones).
    """
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise GalaxyRayError(f"--task {name!r}: unknown task; one of {', '.join(TASKS)}") from None


def of(spec) -> Task:
    """The task of a model spec (anything with a ``task`` name)."""
    return get(spec.task)

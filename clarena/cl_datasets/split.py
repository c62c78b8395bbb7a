"""Split construction: the classes of a source divided into tasks (Split MNIST, Split CIFAR-100, …).

Task $t$ takes the next $C_t$ classes of the class order — an explicit list, the natural order, or a
shuffle seeded by `seed` — with all their training and test samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clarena.cl_datasets.base import CLDataset
from clarena.cl_datasets.sources import SourceData


def split_classes(
    num_classes: int,
    num_tasks: int | None = None,
    classes_per_task: int | Sequence[int] | None = None,
    class_order: Sequence[int] | None = None,
    shuffle_classes: bool = False,
    seed: int = 0,
) -> list[tuple[int, ...]]:
    """Divide the classes of a source into tasks.

    Args:
        num_classes: classes of the source, ids `0..num_classes-1`.
        num_tasks: the number of tasks (optional when `classes_per_task` says it).
        classes_per_task: classes in every task, or a list with one count per task.
        class_order: the classes to use, in order (default: all, ascending).
        shuffle_classes: shuffle the class order with `seed`.
        seed: the seed of the shuffle.

    Returns:
        The classes of each task, entry `t-1` for task `t`.

    Raises:
        ValueError: for unknown or repeated class ids, a count that does not divide the classes,
            more tasks than classes, or neither `num_tasks` nor `classes_per_task`.
    """
    order = list(range(num_classes)) if class_order is None else [int(c) for c in class_order]
    unknown = sorted({c for c in order if not 0 <= c < num_classes})
    if unknown:
        raise ValueError(
            f"class_order has class ids {unknown} that do not exist: the source has classes "
            f"0..{num_classes - 1}"
        )
    if len(set(order)) != len(order):
        raise ValueError(f"class_order repeats class ids: {order}")
    if shuffle_classes:
        order = [order[i] for i in np.random.default_rng([seed, 2]).permutation(len(order))]
    if classes_per_task is None:
        if num_tasks is None:
            raise ValueError("give num_tasks or classes_per_task (or both)")
        if not 1 <= num_tasks <= len(order):
            raise ValueError(
                f"num_tasks={num_tasks} but there are {len(order)} classes: more tasks than classes"
                if num_tasks > len(order)
                else f"num_tasks must be positive, got {num_tasks}"
            )
        if len(order) % num_tasks:
            raise ValueError(
                f"num_tasks={num_tasks} does not divide the {len(order)} classes: choose a divisor "
                f"or give classes_per_task"
            )
        counts = [len(order) // num_tasks] * num_tasks
    elif isinstance(classes_per_task, int):
        if classes_per_task < 1:
            raise ValueError(f"classes_per_task must be positive, got {classes_per_task}")
        if num_tasks is None:
            if len(order) % classes_per_task:
                raise ValueError(
                    f"classes_per_task={classes_per_task} does not divide the {len(order)} "
                    f"classes: choose a divisor, or give num_tasks to use only the first classes"
                )
            num_tasks = len(order) // classes_per_task
        counts = [classes_per_task] * num_tasks
    else:
        counts = [int(c) for c in classes_per_task]
        if num_tasks is not None and num_tasks != len(counts):
            raise ValueError(f"num_tasks={num_tasks} but classes_per_task lists {len(counts)}")
        if any(c < 1 for c in counts):
            raise ValueError(f"every task needs at least one class, got {counts}")
    if num_tasks is not None and num_tasks > len(order):
        raise ValueError(
            f"num_tasks={num_tasks} but there are {len(order)} classes: more tasks than classes"
        )
    if sum(counts) > len(order):
        raise ValueError(
            f"{len(counts)} tasks of {counts} classes need {sum(counts)} classes, but only "
            f"{len(order)} are available"
        )
    bounds = np.cumsum([0, *counts])
    return [tuple(order[bounds[i] : bounds[i + 1]]) for i in range(len(counts))]


class SplitCLDataset(CLDataset):
    """The classes of a source divided into tasks; TIL, CIL or DIL."""

    supported_scenarios = ("TIL", "CIL", "DIL")

    def __init__(
        self,
        source: str | SourceData,
        scenario: str,
        num_tasks: int | None = None,
        classes_per_task: int | Sequence[int] | None = None,
        class_order: Sequence[int] | None = None,
        shuffle_classes: bool = False,
        **kwargs: Any,
    ) -> None:
        """Build the split (see `split_classes`); other arguments go to `CLDataset`.

        Args:
            source: the source name or data.
            scenario: `TIL`, `CIL` or `DIL`.
            num_tasks: the number of tasks.
            classes_per_task: classes in every task, or one count per task.
            class_order: the classes to use, in order.
            shuffle_classes: shuffle the class order with the dataset's `seed`.
            **kwargs: settings of `CLDataset` (`data_root`, `seed`, `batch_size`, …).
        """
        super().__init__(source, scenario, **kwargs)
        self._tasks = split_classes(
            self.num_classes, num_tasks, classes_per_task, class_order, shuffle_classes, self.seed
        )
        self.class_order: list[int] = [c for task in self._tasks for c in task]
        """The classes in task order (task 1's first)."""

    def task_classes(self) -> list[tuple[int, ...]]:
        """The classes of each task."""
        return self._tasks

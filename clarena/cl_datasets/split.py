"""Split construction: the classes of a source divided into tasks (Split MNIST, Split CIFAR-100, …).

Task $t$ takes the next $C_t$ classes of the class order — an explicit list, the natural order, or a
shuffle seeded by `seed` — with all their training and test samples.

Two shuffles (`shuffle_classes`):

- `True`: clarena's own, a permutation from `numpy.random.default_rng([seed, 2])`;
- `"vdv2022"`: the draw of van de Ven, Tuytelaars & Tolias (2022)'s reference implementation
  (GMvandeVen/continual-learning, `data/load.py`, after `main.py` seeds numpy's global generator).
  It draws $p$ = `RandomState(seed).permutation(K)` and relabels class $k$ as $p_k$; task $t$ then
  holds the labels $(t-1)C, \\dots, tC-1$. The class at position $i$ of the new order is therefore
  the one with $p_k = i$: the order is $p^{-1}$. Seed 0 keeps the order, as the reference does
  (its `exception` for seed 0). Seed 11 gives (8, 6), (2, 7), (4, 5), (3, 0), (1, 9) on MNIST.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clarena.cl_datasets.base import CLDataset
from clarena.cl_datasets.sources import SourceData

CLASS_SHUFFLES: tuple[bool | str, ...] = (False, True, "vdv2022")
"""The values `shuffle_classes` takes (see the module docstring)."""


def shuffled_order(order: Sequence[int], shuffle: bool | str, seed: int) -> list[int]:
    """`order` shuffled by the draw `shuffle` names (one of `CLASS_SHUFFLES`) with `seed`.

    Raises:
        ValueError: for a value not in `CLASS_SHUFFLES`.
    """
    if isinstance(shuffle, bool):
        if not shuffle:
            return list(order)
        return [order[i] for i in np.random.default_rng([seed, 2]).permutation(len(order))]
    if shuffle == "vdv2022":
        if seed == 0:
            return list(order)
        relabel = np.random.RandomState(seed).permutation(len(order))
        return [order[i] for i in np.argsort(relabel)]
    raise ValueError(
        f"shuffle_classes={shuffle!r} is not a class shuffle: use false, true (clarena's draw) "
        f"or vdv2022 (the reference implementation of van de Ven et al. 2022)"
    )


def split_classes(
    num_classes: int,
    num_tasks: int | None = None,
    classes_per_task: int | Sequence[int] | None = None,
    class_order: Sequence[int] | None = None,
    shuffle_classes: bool | str = False,
    seed: int = 0,
) -> list[tuple[int, ...]]:
    """Divide the classes of a source into tasks.

    Args:
        num_classes: classes of the source, ids `0..num_classes-1`.
        num_tasks: the number of tasks (optional when `classes_per_task` says it).
        classes_per_task: classes in every task, or a list with one count per task.
        class_order: the classes to use, in order (default: all, ascending).
        shuffle_classes: shuffle the class order with `seed`: `True` (clarena's draw) or
            `"vdv2022"` (the reference's draw of van de Ven et al. 2022, see the module docstring).
        seed: the seed of the shuffle.

    Returns:
        The classes of each task, entry `t-1` for task `t`.

    Raises:
        ValueError: for unknown or repeated class ids, a count that does not divide the classes,
            more tasks than classes, neither `num_tasks` nor `classes_per_task`, or an unknown
            shuffle.
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
    order = shuffled_order(order, shuffle_classes, seed)
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
        shuffle_classes: bool | str = False,
        **kwargs: Any,
    ) -> None:
        """Build the split (see `split_classes`); other arguments go to `CLDataset`.

        Args:
            source: the source name or data.
            scenario: `TIL`, `CIL` or `DIL`.
            num_tasks: the number of tasks.
            classes_per_task: classes in every task, or one count per task.
            class_order: the classes to use, in order.
            shuffle_classes: shuffle the class order with the dataset's `seed`: `True` (clarena's
                draw) or `"vdv2022"` (the reference's draw of van de Ven et al. 2022).
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

"""Data-incremental construction: every task brings new training samples of the same classes.

The training set is cut into $T$ disjoint chunks that together cover it: within every class the
samples are shuffled with `seed` and cut at the cumulative fractions $\\sum_{s \\le t} f_s$, so
each chunk keeps the class balance. Task $t$ trains on chunk $t$ alone, or with `cumulative` on
chunks $1..t$ ("all data so far"): the model-update setting of backward-compatibility studies
(Srivastava et al., "An Empirical Analysis of Backward Compatibility in Machine Learning
Systems", 2020). Validation and test sets are the same for every task; labels are the original
classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from clarena.cl_datasets.base import CLDataset
from clarena.cl_datasets.partition import stratified_parts
from clarena.cl_datasets.sources import SourceData


def chunk_positions(classes: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Cut sample positions into disjoint, covering, class-stratified chunks (seeded).

    Args:
        classes: the class of every sample.
        fractions: the share of each chunk (positive, summing to 1).
        seed: the seed of the shuffle within each class.

    Returns:
        One sorted array of positions per chunk.
    """
    return stratified_parts(classes, fractions, seed, stream=4)


class DataIncrementalCLDataset(CLDataset):
    """New samples of the same classes in every task; scenario `DataIL`."""

    supported_scenarios = ("DataIL",)

    def __init__(
        self,
        source: str | SourceData,
        scenario: str = "DataIL",
        num_tasks: int | None = None,
        chunk_fractions: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> None:
        """Fix the chunk sizes; other arguments go to `CLDataset` (`cumulative`: all data so far).

        Args:
            source: the source name or data.
            scenario: `DataIL`.
            num_tasks: the number of chunks (equal sizes unless `chunk_fractions` is given).
            chunk_fractions: the share of the training set in each chunk (positive, sum 1).
            **kwargs: settings of `CLDataset` (`data_root`, `seed`, `cumulative`, …).
        """
        super().__init__(source, scenario, **kwargs)
        if chunk_fractions is None:
            if not isinstance(num_tasks, int) or num_tasks < 1:
                raise ValueError(
                    f"give chunk_fractions or a positive integer num_tasks, got {num_tasks!r}"
                )
            chunk_fractions = [1.0 / num_tasks] * num_tasks
        fractions = [float(f) for f in chunk_fractions]
        if (
            not fractions
            or any(not f > 0 for f in fractions)
            or not math.isclose(sum(fractions), 1)
        ):
            raise ValueError(f"chunk_fractions must be positive and sum to 1, got {fractions}")
        if num_tasks is not None and num_tasks != len(fractions):
            raise ValueError(f"num_tasks={num_tasks} but chunk_fractions has {len(fractions)}")
        self.chunk_fractions: list[float] = fractions
        """The share of the training set in each task's chunk."""
        self._chunks: list[torch.Tensor] | None = None

    def task_classes(self) -> list[tuple[int, ...]]:
        """Every task holds all classes of the source, in ascending order."""
        return [tuple(range(self.num_classes))] * len(self.chunk_fractions)

    def select(self, task_id: int, split: str, pool_classes: torch.Tensor) -> torch.Tensor:
        """Task `task_id`'s chunk of the training pool; the whole pool for `val` and `test`."""
        if split != "train":
            return torch.arange(pool_classes.shape[0])
        if self._chunks is None:
            chunks = chunk_positions(pool_classes.numpy(), self.chunk_fractions, self.seed)
            self._chunks = [torch.from_numpy(c) for c in chunks]
        return self._chunks[task_id - 1]

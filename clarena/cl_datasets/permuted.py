"""Permuted construction: every task is the whole source under its own fixed pixel permutation.

Task $t$ shows image $x$ as $x'_{c,p} = x_{c,\\pi_t(p)}$ over the flattened pixel positions $p$,
with $\\pi_t$ drawn from a generator seeded by `(seed, t)` (optionally $\\pi_1$ the identity:
task 1 is the original data). Goodfellow et al., "An Empirical Investigation of Catastrophic
Forgetting in Gradient-Based Neural Networks", 2013.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from clarena.cl_datasets.base import CLDataset
from clarena.cl_datasets.sources import SourceData
from clarena.cl_datasets.transforms import PixelPermutation


def task_permutations(
    num_pixels: int, num_tasks: int, seed: int, first_task_identity: bool = False
) -> torch.Tensor:
    """One seeded permutation of `num_pixels` positions per task.

    Args:
        num_pixels: $H \\cdot W$.
        num_tasks: the number of tasks.
        seed: the seed; the permutation of task $t$ depends only on `(seed, t)`.
        first_task_identity: make task 1's permutation the identity.

    Returns:
        int64 `(num_tasks, num_pixels)`, row `t-1` for task `t`.
    """
    rows = []
    for t in range(1, num_tasks + 1):
        if t == 1 and first_task_identity:
            rows.append(np.arange(num_pixels))
        else:
            rows.append(np.random.default_rng([seed, 3, t]).permutation(num_pixels))
    return torch.from_numpy(np.stack(rows)).long()


class PermutedCLDataset(CLDataset):
    """The whole source once per task, each task with its own pixel permutation; TIL, CIL or DIL."""

    supported_scenarios = ("TIL", "CIL", "DIL")

    def __init__(
        self,
        source: str | SourceData,
        scenario: str,
        num_tasks: int = 10,
        first_task_identity: bool = False,
        **kwargs: Any,
    ) -> None:
        """Draw the permutations; other arguments go to `CLDataset`.

        Args:
            source: the source name or data.
            scenario: `TIL`, `CIL` (task $t$'s classes are new classes) or `DIL`.
            num_tasks: the number of tasks (positive).
            first_task_identity: task 1 is the unpermuted source.
            **kwargs: settings of `CLDataset` (`data_root`, `seed`, `batch_size`, …).
        """
        super().__init__(source, scenario, **kwargs)
        if not isinstance(num_tasks, int) or num_tasks < 1:
            raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}")
        _, h, w = self.input_shape
        self.permutations = task_permutations(h * w, num_tasks, self.seed, first_task_identity)
        """int64 `(num_tasks, H*W)`: row `t-1` is the permutation of task `t`."""

    def task_classes(self) -> list[tuple[int, ...]]:
        """Every task holds all classes of the source, in ascending order."""
        return [tuple(range(self.num_classes))] * self.permutations.shape[0]

    def task_transform(self) -> PixelPermutation:
        """The per-task pixel permutation."""
        return PixelPermutation(self.permutations)

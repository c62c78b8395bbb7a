"""Rotated construction: every task is the whole source rotated by its own fixed angle.

Task $t$ rotates every image by $\\alpha_t$ degrees about its centre (bilinear, zero fill): given
explicitly, or evenly spaced $\\alpha_t = (t - 1)\\, \\alpha_{\\max} / T$ so task 1 is the original
data. Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", 2017.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from clarena.cl_datasets.base import CLDataset
from clarena.cl_datasets.sources import SourceData
from clarena.cl_datasets.transforms import Rotation


class RotatedCLDataset(CLDataset):
    """The whole source once per task, each task rotated by its own angle; TIL, CIL or DIL."""

    supported_scenarios = ("TIL", "CIL", "DIL")

    def __init__(
        self,
        source: str | SourceData,
        scenario: str,
        num_tasks: int | None = None,
        angles: Sequence[float] | None = None,
        max_angle: float = 180.0,
        **kwargs: Any,
    ) -> None:
        """Fix the angles; other arguments go to `CLDataset`.

        Args:
            source: the source name or data.
            scenario: `TIL`, `CIL` (task $t$'s classes are new classes) or `DIL`.
            num_tasks: the number of tasks (optional when `angles` are given).
            angles: one angle per task, in degrees counter-clockwise.
            max_angle: with `angles` unset, task $t$ gets $(t-1) \\cdot$ `max_angle` $/ T$.
            **kwargs: settings of `CLDataset` (`data_root`, `seed`, `batch_size`, …).
        """
        super().__init__(source, scenario, **kwargs)
        if angles is None:
            if not isinstance(num_tasks, int) or num_tasks < 1:
                raise ValueError(f"give angles or a positive integer num_tasks, got {num_tasks!r}")
            angles = [(t - 1) * float(max_angle) / num_tasks for t in range(1, num_tasks + 1)]
        angles = [float(a) for a in angles]
        if not angles or not all(math.isfinite(a) for a in angles):
            raise ValueError(f"angles must be a non-empty list of finite numbers, got {angles}")
        if num_tasks is not None and num_tasks != len(angles):
            raise ValueError(f"num_tasks={num_tasks} but {len(angles)} angles are given")
        self.angles: list[float] = angles
        """The angle of each task in degrees (entry `t-1` for task `t`)."""

    def task_classes(self) -> list[tuple[int, ...]]:
        """Every task holds all classes of the source, in ascending order."""
        return [tuple(range(self.num_classes))] * len(self.angles)

    def task_transform(self) -> Rotation:
        """The per-task rotation."""
        return Rotation(self.angles)

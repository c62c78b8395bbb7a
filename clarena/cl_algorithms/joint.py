"""Joint training on all tasks' data seen so far (the upper bound)."""

from __future__ import annotations

from typing import ClassVar

from clarena.cl_algorithms.finetuning import Finetuning


class Joint(Finetuning):
    """Cross-entropy on the union of the training data of tasks $1..t$ while learning task $t$.

    `cumulative_data = True` makes the pipeline serve all data so far
    (`datamodule.setup_task(t, cumulative=True)`); batches then mix tasks, which the heads handle
    through the batch's task ids. Otherwise Finetuning's composition, the one term `ce`. Supports
    every scenario. Loss terms: `ce`.
    """

    cumulative_data: ClassVar[bool] = True

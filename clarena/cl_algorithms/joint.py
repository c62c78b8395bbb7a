"""Joint training on all tasks' data seen so far (the upper bound)."""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor

from clarena.cl_algorithms.base import Batch, CLAlgorithm


class Joint(CLAlgorithm):
    """Cross-entropy on the union of the training data of tasks $1..t$ while learning task $t$.

    `cumulative_data = True` makes the pipeline serve all data so far
    (`datamodule.setup_task(t, cumulative=True)`); batches then mix tasks, which the heads handle
    through the batch's task ids. Supports every scenario. Loss terms: `ce`.
    """

    cumulative_data: ClassVar[bool] = True

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy of a batch drawn from every task so far."""
        x, y, task_ids = batch
        return {"ce": F.cross_entropy(self(x, task_ids), y)}

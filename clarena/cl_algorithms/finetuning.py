"""Finetuning: train on each task in turn with nothing against forgetting (the lower bound)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from clarena.cl_algorithms.base import Batch, CLAlgorithm


class Finetuning(CLAlgorithm):
    """Plain cross-entropy on the current task's data: $\\mathcal{L} = \\mathrm{CE}(f(x), y)$.

    Supports every scenario. Loss terms: `ce`.
    """

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy of the current batch."""
        x, y, task_ids = batch
        return {"ce": F.cross_entropy(self(x, task_ids), y)}

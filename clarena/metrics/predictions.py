"""Test predictions, batch by batch, into per-task tensors: what `CLResults.add` takes.

An algorithm's `test_step` returns, for its batch, `{task_id: {"preds", "preds_task_aware",
"targets"}}` (`task_predictions`); a `PredictionLog` concatenates the batches of one test epoch
per task. The pipeline's `RecordPredictions` callback feeds it and hands the result to
`CLResults` — the one way predictions travel from the model to the results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

PREDICTION_KEYS: tuple[str, ...] = ("preds", "preds_task_aware", "targets")
"""The per-task tensors of a test: task-agnostic predictions (argmax over every column), task-aware
ones (argmax over the task's own classes) and the labels."""

TaskPredictions = dict[int, dict[str, Tensor]]
"""`{task_id: {"preds": (N,), "preds_task_aware": (N,), "targets": (N,)}}`, int64."""


def task_predictions(
    logits: Tensor,
    targets: Tensor,
    task_ids: Tensor,
    class_range: Callable[[int], tuple[int, int]],
) -> TaskPredictions:
    """The predictions of one test batch, split by task (on the CPU).

    Args:
        logits: `(B, K)` logits; the task-agnostic prediction is their argmax.
        targets: `(B,)` labels.
        task_ids: `(B,)` task of each sample.
        class_range: task → its columns `[start, end)`; the task-aware prediction is
            `start + argmax(logits[:, start:end])`.
    """
    preds = logits.argmax(1)
    out: TaskPredictions = {}
    for t in torch.unique(task_ids).tolist():
        rows = task_ids == t
        start, end = class_range(int(t))
        out[int(t)] = {
            "preds": preds[rows].cpu(),
            "preds_task_aware": (start + logits[rows, start:end].argmax(1)).cpu(),
            "targets": targets[rows].cpu(),
        }
    return out


class PredictionLog:
    """The predictions of one test epoch, per task: `update` with each batch's
    `TaskPredictions`, `compute` to concatenate them (int64, CPU, in batch order)."""

    def __init__(self) -> None:
        self._parts: dict[int, dict[str, list[Tensor]]] = {}

    def reset(self) -> None:
        """Forget every batch."""
        self._parts = {}

    def update(self, batch: Mapping[int, Mapping[str, Tensor]] | None) -> None:
        """Add one batch's predictions (None or `{}`: a batch with no task the model knows)."""
        for t, values in (batch or {}).items():
            parts = self._parts.setdefault(int(t), {k: [] for k in PREDICTION_KEYS})
            for key in PREDICTION_KEYS:
                parts[key].append(values[key].detach().cpu())

    def compute(self) -> TaskPredictions:
        """Per task, the concatenated `preds`, `preds_task_aware` and `targets`."""
        return {
            t: {k: torch.cat(v).long() for k, v in parts.items()}
            for t, parts in sorted(self._parts.items())
        }

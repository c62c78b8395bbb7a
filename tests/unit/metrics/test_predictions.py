"""Test predictions from logits to `CLResults`: `task_predictions` by hand, `PredictionLog`'s
concatenation, and `RecordPredictions` adding a test epoch to the results."""

from __future__ import annotations

import torch

from clarena.metrics import CLResults
from clarena.metrics.predictions import PredictionLog, task_predictions
from clarena.run.callbacks import RecordPredictions


def _ranges(t: int) -> tuple[int, int]:
    return {1: (0, 2), 2: (2, 4)}[t]


def test_task_predictions_by_hand() -> None:
    logits = torch.tensor(
        [
            [0.0, 1.0, 0.0, 5.0],  # task 1: overall argmax 3, within task 1's columns 1
            [2.0, 1.0, 0.0, 0.0],  # task 1: 0 and 0
            [0.0, 9.0, 1.0, 0.0],  # task 2: overall 1, within columns 2-3: 2
        ]
    )
    out = task_predictions(logits, torch.tensor([1, 0, 3]), torch.tensor([1, 1, 2]), _ranges)
    assert sorted(out) == [1, 2]
    assert out[1]["preds"].tolist() == [3, 0] and out[1]["preds_task_aware"].tolist() == [1, 0]
    assert out[1]["targets"].tolist() == [1, 0]
    assert out[2]["preds"].tolist() == [1] and out[2]["preds_task_aware"].tolist() == [2]


def _batch(preds, aware, targets):
    as_long = lambda v: torch.tensor(v, dtype=torch.int32)  # noqa: E731
    return {
        "preds": as_long(preds),
        "preds_task_aware": as_long(aware),
        "targets": as_long(targets),
    }


def test_prediction_log_concatenates_in_batch_order_and_resets() -> None:
    log = PredictionLog()
    log.update({2: _batch([3], [3], [2])})
    log.update({})  # a batch of tasks the model does not know yet
    log.update(None)
    log.update({1: _batch([1, 0], [1, 0], [1, 1]), 2: _batch([2], [2], [2])})
    out = log.compute()
    assert list(out) == [1, 2]
    assert out[2]["preds"].tolist() == [3, 2] and out[2]["preds"].dtype == torch.int64
    assert out[1]["targets"].tolist() == [1, 1]
    log.reset()
    assert log.compute() == {}


def test_record_predictions_adds_the_epoch_to_the_results() -> None:
    results = CLResults("CIL")
    recorder = RecordPredictions(results, after_task=2)
    module = torch.nn.Module()
    module.scenario = "CIL"
    recorder.on_test_epoch_start(None, module)
    recorder.on_test_batch_end(None, module, {1: _batch([1, 3], [1, 0], [1, 1])}, None, 0)
    recorder.on_test_batch_end(None, module, {2: _batch([2, 2], [2, 2], [2, 3])}, None, 1)
    recorder.on_test_epoch_end(None, module)
    # after task 2: task 1 right on 1 of 2 (1 of 2 task-aware), task 2 right on 1 of 2
    assert results.accuracy_matrix()[1].tolist() == [0.5, 0.5]
    assert results.accuracy_matrix(task_aware=True)[1].tolist() == [0.5, 0.5]
    assert results.predictions(2, 1).tolist() == [1, 3]
    assert recorder.outputs[2]["targets"].tolist() == [2, 3]

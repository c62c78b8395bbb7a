"""The task progress bar's epoch label under epoch and step budgets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clarena.pipelines.callbacks import TaskProgressBar


@pytest.mark.parametrize(
    ("max_epochs", "label"), [(5, "Epoch 3/4"), (-1, "Epoch 3"), (None, "Epoch 3")]
)
def test_epoch_label(max_epochs: int | None, label: str) -> None:
    bar = TaskProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=max_epochs)
    assert bar._get_train_description(3).strip() == label

"""The task progress bar names the task and the budget, counted from 1."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clarena.pipelines.callbacks import TaskProgressBar


@pytest.mark.parametrize(
    ("max_epochs", "max_steps", "label"),
    [
        (3, -1, "task 3/5 · epoch 3/3"),  # the last of three epochs (Lightning: "Epoch 2/2")
        (-1, 2000, "task 3/5 · epoch 3 · 2000 steps"),
        (None, -1, "task 3/5 · epoch 3"),
    ],
)
def test_label_names_the_task_and_the_budget(
    max_epochs: int | None, max_steps: int, label: str
) -> None:
    bar = TaskProgressBar(task_id=3, num_tasks=5)
    bar._trainer = SimpleNamespace(max_epochs=max_epochs, max_steps=max_steps)
    assert bar._get_train_description(2).strip() == label


def test_label_without_a_task() -> None:
    bar = TaskProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=5, max_steps=-1)
    assert bar._get_train_description(0).strip() == "epoch 1/5"

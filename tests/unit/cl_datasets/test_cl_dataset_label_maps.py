"""Label maps of the split construction, worked out by hand for classes [3, 1, 4, 0, 2, 5]."""

from __future__ import annotations

import pytest
import torch
from cl_dataset_helpers import PLAIN, decode, encoded_source

from clarena.cl_datasets import SplitCLDataset

ORDER = [3, 1, 4, 0, 2, 5]  # 3 tasks of 2: {3, 1}, {4, 0}, {2, 5}
TASK_OF = {3: 1, 1: 1, 4: 2, 0: 2, 2: 3, 5: 3}
LABEL = {
    "TIL": {3: 0, 1: 1, 4: 0, 0: 1, 2: 0, 5: 1},
    "CIL": {3: 0, 1: 1, 4: 2, 0: 3, 2: 4, 5: 5},
    "DIL": {3: 0, 1: 1, 4: 0, 0: 1, 2: 0, 5: 1},
}
OUTPUT_DIM = {"TIL": [2, 2, 2], "CIL": [2, 4, 6], "DIL": [2, 2, 2]}


def _samples(loader) -> list[tuple[int, int, int]]:
    """(class, label, task id) of every sample a loader yields."""
    rows = []
    for x, y, task_ids in loader:
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and task_ids.dtype == torch.int64
        assert x.shape[1:] == (1, 4, 4) and y.shape == task_ids.shape == (x.shape[0],)
        rows += zip(decode(x).tolist(), y.tolist(), task_ids.tolist(), strict=True)
    return rows


@pytest.mark.parametrize("scenario", ["TIL", "CIL", "DIL"])
def test_label_map_and_task_ids_by_hand(scenario):
    data = SplitCLDataset(
        encoded_source(), scenario, classes_per_task=2, class_order=ORDER, batch_size=5, **PLAIN
    )
    assert data.num_tasks == 3
    assert [data.classes_of_task(t) for t in (1, 2, 3)] == [(3, 1), (4, 0), (2, 5)]
    assert [data.output_dim(t) for t in (1, 2, 3)] == OUTPUT_DIM[scenario]
    for t in (1, 2, 3):
        assert data.label_map(t) == {c: LABEL[scenario][c] for c in data.classes_of_task(t)}
        data.setup_task(t)
        train = _samples(data.train_dataloader())
        # 4 training samples of each of the task's 2 classes, each with its hand-worked label.
        assert sorted(train) == sorted(
            (c, LABEL[scenario][c], t) for c in data.classes_of_task(t) for _ in range(4)
        )
        tests = data.test_dataloader()
        assert len(tests) == t
        for s, loader in enumerate(tests, start=1):
            assert sorted(_samples(loader)) == sorted(
                (c, LABEL[scenario][c], s) for c in data.classes_of_task(s) for _ in range(2)
            )


@pytest.mark.parametrize("scenario", ["TIL", "CIL", "DIL"])
def test_cumulative_training_keeps_each_sample_in_its_task(scenario):
    data = SplitCLDataset(
        encoded_source(), scenario, classes_per_task=2, class_order=ORDER, batch_size=7, **PLAIN
    )
    data.setup_task(2, cumulative=True)
    rows = _samples(data.train_dataloader())
    assert sorted(rows) == sorted(
        (c, LABEL[scenario][c], TASK_OF[c]) for c in (3, 1, 4, 0) for _ in range(4)
    )


def test_test_all_tasks_gives_a_loader_for_every_task():
    data = SplitCLDataset(
        encoded_source(), "CIL", classes_per_task=2, class_order=ORDER, test_all_tasks=True, **PLAIN
    )
    data.setup_task(1)
    loaders = data.test_dataloader()
    assert [sorted({c for c, _, _ in _samples(loader)}) for loader in loaders] == [
        [1, 3],
        [0, 4],
        [2, 5],
    ]


def test_digits_split_by_hand():
    data = SplitCLDataset("digits", "CIL", num_tasks=3, class_order=ORDER, val_fraction=0.0)
    assert data.class_order == ORDER
    assert [data.label_map(t) for t in (1, 2, 3)] == [{3: 0, 1: 1}, {4: 2, 0: 3}, {2: 4, 5: 5}]
    data.setup_task(2)
    rows, classes = data.task_samples(2, "train")
    assert set(classes.tolist()) == {0, 4}
    # scikit-learn's digits: 178 zeros and 181 fours; 3/4 of each class are training samples.
    assert rows.numel() == (178 - 178 // 4) + (181 - 181 // 4) == 270
    x, y, task_ids = next(iter(data.train_dataloader()))
    assert x.shape[1:] == (1, 8, 8)
    assert set(y.tolist()) <= {2, 3} and set(task_ids.tolist()) == {2}

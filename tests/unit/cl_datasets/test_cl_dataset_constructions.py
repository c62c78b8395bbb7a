"""Seeded class orders, permutations, rotations and data-incremental chunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cl_dataset_helpers import PLAIN, decode, encode

from clarena.cl_datasets import (
    DataIncrementalCLDataset,
    PermutedCLDataset,
    RotatedCLDataset,
    SourceData,
    SplitCLDataset,
    chunk_positions,
    task_permutations,
)


def position_source(num_per_class: int = 2) -> SourceData:
    """3 classes of 4×4 images whose pixel at flat position p holds 10 * p + class."""
    classes = torch.arange(3).repeat(num_per_class)
    images = (10 * torch.arange(16)[None] + classes[:, None]).to(torch.uint8)
    images = images.reshape(-1, 1, 4, 4)
    return SourceData("positions", images, classes, images.clone(), classes.clone(), 3)


def test_seeded_class_order_is_reproducible_and_differs_across_seeds():
    orders = {
        seed: SplitCLDataset(
            "digits", "CIL", classes_per_task=2, shuffle_classes=True, seed=seed
        ).class_order
        for seed in (0, 0, 1, 2)
    }
    again = SplitCLDataset("digits", "CIL", classes_per_task=2, shuffle_classes=True, seed=0)
    assert again.class_order == orders[0]
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] != orders[2]
    assert all(sorted(order) == list(range(10)) for order in orders.values())
    assert SplitCLDataset("digits", "CIL", classes_per_task=2).class_order == list(range(10))


def test_permutations_are_seeded_and_differ_across_tasks_and_seeds():
    a = task_permutations(784, 4, seed=0)
    assert torch.equal(a, task_permutations(784, 4, seed=0))
    assert all(sorted(row.tolist()) == list(range(784)) for row in a)
    assert len({tuple(row.tolist()) for row in a}) == 4  # one per task
    assert not torch.equal(a, task_permutations(784, 4, seed=1))
    # The permutation of task t depends on (seed, t) only: more tasks extend, never reshuffle.
    assert torch.equal(task_permutations(784, 6, seed=0)[:4], a)
    identity_first = task_permutations(784, 4, seed=0, first_task_identity=True)
    assert identity_first[0].tolist() == list(range(784))
    assert torch.equal(identity_first[1:], a[1:])
    assert a[0].tolist() != list(range(784))


@pytest.mark.parametrize("scenario", ["TIL", "CIL", "DIL"])
def test_permuted_batches_apply_each_tasks_permutation(scenario):
    data = PermutedCLDataset(position_source(), scenario, num_tasks=3, seed=5, **PLAIN)
    perms = data.permutations
    assert [data.output_dim(t) for t in (1, 2, 3)] == (
        [3, 6, 9] if scenario == "CIL" else [3, 3, 3]
    )
    data.setup_task(3, cumulative=True)
    count = 0
    for x, y, task_ids in data.train_dataloader():
        pixels = (x.reshape(x.shape[0], 16) * 255).round().long()
        for row, label, t in zip(pixels, y.tolist(), task_ids.tolist(), strict=True):
            cls = int(row[0]) % 10
            assert row.tolist() == (10 * perms[t - 1] + cls).tolist()
            # TIL and DIL keep the original class; in CIL task t's classes are new: 3(t-1) + c.
            assert label == (3 * (t - 1) + cls if scenario == "CIL" else cls)
            count += 1
    assert count == 3 * 6


def test_rotation_by_quarter_turns_is_exact():
    data = RotatedCLDataset(position_source(), "DIL", angles=[0, 90, 180, -90], **PLAIN)
    data.setup_task(4, cumulative=True)
    seen = set()
    for x, y, task_ids in data.train_dataloader():
        for image, cls, t in zip(x, y.tolist(), task_ids.tolist(), strict=True):
            original = ((10 * torch.arange(16) + cls) / 255).reshape(1, 4, 4)
            # counter-clockwise by 90° on screen (row 0 at the top) is rot90 with k = 1.
            expected = torch.rot90(original, k=[0, 1, 2, -1][t - 1], dims=(1, 2))
            torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)
            seen.add(t)
    assert seen == {1, 2, 3, 4}


def test_rotated_default_angles_are_evenly_spaced():
    assert RotatedCLDataset("digits", "DIL", num_tasks=5).angles == [0, 36, 72, 108, 144]
    assert RotatedCLDataset("digits", "DIL", num_tasks=4, max_angle=90).angles == [
        0,
        22.5,
        45,
        67.5,
    ]


def test_chunks_are_disjoint_covering_balanced_and_seeded():
    classes = np.repeat(np.arange(3), 20)  # 20 samples of each of 3 classes
    chunks = chunk_positions(classes, [0.1, 0.2, 0.3, 0.4], seed=7)
    assert [len(c) for c in chunks] == [6, 12, 18, 24]
    assert [np.bincount(classes[c]).tolist() for c in chunks] == [
        [2] * 3,
        [4] * 3,
        [6] * 3,
        [8] * 3,
    ]
    joined = np.concatenate(chunks)
    assert sorted(joined.tolist()) == list(range(60))  # disjoint and covering
    same = chunk_positions(classes, [0.1, 0.2, 0.3, 0.4], seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(chunks, same, strict=True))
    other = chunk_positions(classes, [0.1, 0.2, 0.3, 0.4], seed=8)
    assert not all(np.array_equal(a, b) for a, b in zip(chunks, other, strict=True))


def test_data_incremental_tasks_new_chunks_or_all_data_so_far():
    classes = torch.arange(6).repeat(10)
    source = SourceData("encoded", encode(classes), classes, encode(classes[:12]), classes[:12], 6)
    data = DataIncrementalCLDataset(source, "DataIL", chunk_fractions=[0.2, 0.3, 0.5], **PLAIN)
    assert [data.output_dim(t) for t in (1, 2, 3)] == [6, 6, 6]
    rows = [set(data.task_samples(t, "train")[0].tolist()) for t in (1, 2, 3)]
    assert [len(r) for r in rows] == [12, 18, 30]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    assert rows[0] | rows[1] | rows[2] == set(range(60))
    data.setup_task(2)
    labels = [
        (c, y, t)
        for x, ys, ts in data.train_dataloader()
        for c, y, t in zip(decode(x).tolist(), ys.tolist(), ts.tolist(), strict=True)
    ]
    assert len(labels) == 18 and all(c == y and t == 2 for c, y, t in labels)
    data.setup_task(2, cumulative=True)
    assert data.train_dataloader().num_samples == 30
    assert [loader.num_samples for loader in data.test_dataloader()] == [12, 12]
    cumulative = DataIncrementalCLDataset(source, "DataIL", num_tasks=3, cumulative=True, **PLAIN)
    cumulative.setup_task(3)
    assert cumulative.train_dataloader().num_samples == 60


def test_unequal_tasks_from_a_list_of_counts():
    classes = torch.arange(6).repeat(2)
    source = SourceData("encoded", encode(classes), classes, encode(classes), classes, 6)
    dims = {
        scenario: [
            SplitCLDataset(source, scenario, classes_per_task=[1, 2, 3], **PLAIN).output_dim(t)
            for t in (1, 2, 3)
        ]
        for scenario in ("TIL", "CIL", "DIL")
    }
    assert dims == {"TIL": [1, 2, 3], "CIL": [1, 3, 6], "DIL": [3, 3, 3]}
    data = SplitCLDataset(source, "CIL", classes_per_task=[1, 2, 3], class_order=[5, 4, 3, 2, 1, 0])
    assert [data.label_map(t) for t in (1, 2, 3)] == [{5: 0}, {4: 1, 3: 2}, {2: 3, 1: 4, 0: 5}]
    with pytest.raises(ValueError, match=r"3 tasks of \[2, 2, 3\] classes need 7 classes"):
        SplitCLDataset(source, "CIL", classes_per_task=[2, 2, 3])

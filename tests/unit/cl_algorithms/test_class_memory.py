"""`ClassMemory` with a fixed total `memory_size`: the shares of each class, worked out by hand."""

from __future__ import annotations

import pytest
import torch

from clarena.cl_algorithms.class_memory import ClassMemory


def _task(task_id: int, labels: tuple[int, int], per_class: int = 6) -> list[tuple]:
    """Two batches of one task: `per_class` samples of each label, x = a unique id per sample."""
    y = torch.tensor([labels[0]] * per_class + [labels[1]] * per_class)
    x = (100 * task_id + torch.arange(len(y))).float()[:, None]
    t = torch.full_like(y, task_id)
    half = len(y) // 2
    return [(x[:half], y[:half], t[:half]), (x[half:], y[half:], t[half:])]


def _counts(memory: ClassMemory) -> dict[tuple[int, int], int]:
    pairs = zip(memory.tensors["task_ids"].tolist(), memory.tensors["y"].tolist(), strict=True)
    counts: dict[tuple[int, int], int] = {}
    for key in pairs:
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_memory_size_is_shared_evenly_and_older_classes_shrink_to_a_subset():
    memory = ClassMemory(None, per_task_batches=False, seed=0, memory_size=5)
    memory.add_task(_task(1, (0, 1)))
    # 2 classes: 5 // 2 = 2 each, the first class (task 1, label 0) one more
    assert _counts(memory) == {(1, 0): 3, (1, 1): 2}
    first = set(memory.tensors["x"].flatten().tolist())
    assert first <= set(range(100, 112))  # samples of task 1 only, each at most once
    assert len(first) == 5
    memory.add_task(_task(2, (2, 3)))
    # 4 classes: 5 // 4 = 1 each, the first class one more
    assert _counts(memory) == {(1, 0): 2, (1, 1): 1, (2, 2): 1, (2, 3): 1}
    kept = set(memory.tensors["x"].flatten().tolist())
    assert len(kept) == 5
    assert {v for v in kept if v < 200} <= first  # what task 1 kept is a subset of what it had
    assert {v - 200 for v in kept if v >= 200} <= set(range(12))
    # the labels travel with their samples: task 2's first six ids are label 2
    for x, y in zip(memory.tensors["x"].flatten().tolist(), memory.tensors["y"].tolist()):
        if x >= 200:
            assert y == (2 if x - 200 < 6 else 3)


def test_memory_size_state_round_trip_draws_the_same_batches():
    memory = ClassMemory(None, per_task_batches=False, seed=3, memory_size=8)
    memory.add_task(_task(1, (0, 1)))
    copy = ClassMemory(None, per_task_batches=False, seed=99, memory_size=8)
    copy.load_state_dict(memory.state_dict())
    a = memory.sample(4, torch.device("cpu"))
    b = copy.sample(4, torch.device("cpu"))
    assert all(torch.equal(a[k], b[k]) for k in ("x", "y", "task_ids"))


@pytest.mark.parametrize(
    ("budget", "size", "message"),
    [(None, None, "exactly one"), (10, 20, "exactly one"), (None, 0, "positive")],
)
def test_class_memory_refuses_ambiguous_or_empty_budgets(budget, size, message):
    with pytest.raises(ValueError, match=message):
        ClassMemory(budget, per_task_batches=False, memory_size=size)

"""The in-memory loader: seeded shuffling per epoch, DDP shards, batch augmentation, statistics."""

from __future__ import annotations

from itertools import chain

import pytest
import torch

from clarena.cl_datasets import InMemoryLoader
from clarena.cl_datasets import loader as loader_module
from clarena.cl_datasets.transforms import (
    BatchTransform,
    PixelPermutation,
    Rotation,
    channel_stats,
    random_crop,
)

IDENTITY = BatchTransform([0.0], [1.0 / 255.0])  # x / 255 * 255: the raw byte values


def make_loader(n: int, batch_size: int, train: bool, seed: int = 0, **kwargs) -> InMemoryLoader:
    """Sample i is a 1×1 image holding i; its label is i too."""
    images = torch.arange(n, dtype=torch.uint8).reshape(n, 1, 1, 1)
    index = torch.arange(n)
    return InMemoryLoader(
        images, index, index.clone(), torch.ones(n, dtype=torch.int64), IDENTITY,
        batch_size, train=train, seed=seed, **kwargs,
    )  # fmt: skip


def flat(batches: list[list[int]]) -> list[int]:
    return list(chain.from_iterable(batches))


def epoch(loader: InMemoryLoader) -> list[list[int]]:
    batches = []
    for x, y, _ in loader:
        assert x.flatten().round().long().tolist() == y.tolist()
        batches.append(y.tolist())
    return batches


def test_eval_order_is_fixed_and_batches_are_full_then_rest():
    loader = make_loader(10, 4, train=False)
    assert len(loader) == 3
    assert epoch(loader) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] == epoch(loader)


def test_training_shuffle_is_seeded_and_changes_every_epoch():
    a, b = make_loader(50, 8, train=True, seed=3), make_loader(50, 8, train=True, seed=3)
    first, second = epoch(a), epoch(a)
    assert first == epoch(b) and second == epoch(b)  # same seed, same sequence of epochs
    assert first != second  # reshuffled each epoch
    assert sorted(flat(first)) == list(range(50)) == sorted(flat(second))
    a.sampler.set_epoch(0)  # what Lightning does before each epoch
    assert epoch(a) == first
    assert epoch(make_loader(50, 8, train=True, seed=4)) != first
    dropping = make_loader(50, 8, train=True, seed=3, drop_last=True)
    assert len(dropping) == 6 and [len(b) for b in epoch(dropping)] == [8] * 6


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_training_shards_are_disjoint_padded_and_equal(monkeypatch, world):
    shards = []
    for rank in range(world):
        monkeypatch.setattr(loader_module, "_world", lambda r=rank: (r, world))
        loader = make_loader(10, 3, train=True, seed=1)
        batches = epoch(loader)
        # shards of 5 (W = 2) or ceil(10 / 3) = 4 (W = 3) samples: 2 batches of at most 3.
        assert len(batches) == len(loader) == 2
        shards.append(flat(batches))
    # DistributedSampler's rule: pad by wrapping to a multiple of the world size, then stride.
    assert [len(s) for s in shards] == [-(-10 // world)] * world
    every = flat(shards)
    assert sorted(set(every)) == list(range(10)) and len(every) - len(set(every)) == -10 % world


def test_ddp_evaluation_shards_are_disjoint_with_equal_batch_counts(monkeypatch):
    world, seen = 3, []
    for rank in range(world):
        monkeypatch.setattr(loader_module, "_world", lambda r=rank: (r, world))
        loader = make_loader(10, 2, train=False)
        batches = epoch(loader)
        # ceil(ceil(10 / 3) / 2) = 2 batches on every rank, nothing duplicated.
        assert len(batches) == len(loader) == 2
        seen.append(batches)
    assert seen == [[[0, 3], [6, 9]], [[1, 4], [7]], [[2, 5], [8]]]


def test_random_crop_is_a_shift_of_the_zero_padded_image():
    x = torch.arange(1.0, 26.0).reshape(1, 1, 5, 5).repeat(64, 3, 1, 1)
    out = random_crop(x, 2, torch.Generator().manual_seed(0))
    shifts = set()
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(64):
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 5, dx : dx + 5])
        ]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 10  # offsets vary across samples


def test_augmentation_is_seeded_and_off_for_evaluation():
    transform = BatchTransform([0.5], [0.25], crop_padding=1, horizontal_flip=True)
    x = torch.randint(
        0, 256, (32, 1, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    t = torch.ones(32, dtype=torch.int64)
    a = transform(x, t, torch.Generator().manual_seed(9), augment=True)
    b = transform(x, t, torch.Generator().manual_seed(9), augment=True)
    assert torch.equal(a, b)
    plain = transform(x, t, torch.Generator().manual_seed(9), augment=False)
    torch.testing.assert_close(plain, (x.float() / 255 - 0.5) / 0.25)
    assert not torch.equal(a, plain)


def test_channel_stats_are_exact():
    x = torch.tensor([0, 255, 51, 102], dtype=torch.uint8).reshape(1, 1, 2, 2).repeat(3, 2, 1, 1)
    x[:, 1] = 255
    mean, std = channel_stats(x)
    # channel 0: values 0, 1, 0.2, 0.4 -> mean 0.4, var (0.16 + 0.36 + 0.04 + 0) / 4 = 0.14
    assert mean == pytest.approx([0.4, 1.0]) and std[0] == pytest.approx(0.14**0.5)
    assert std[1] == pytest.approx(1e-6)  # a constant channel is clamped away from zero


def _loader_of(transform: BatchTransform, train: bool, n: int = 300) -> InMemoryLoader:
    generator = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (n, 1, 6, 6), dtype=torch.uint8, generator=generator)
    index = torch.randperm(n, generator=generator)[: n - 17]  # a subset, in another order
    tasks = torch.randint(1, 3, index.shape, generator=generator)
    return InMemoryLoader(images, index, index.clone(), tasks, transform, 32, train=train, seed=4)


@pytest.mark.parametrize(
    "task_transform",
    [
        None,
        PixelPermutation(torch.stack([torch.randperm(36), torch.randperm(36)])),
        Rotation([0, 33]),
    ],
)
def test_cached_batches_equal_the_batches_transformed_every_epoch(monkeypatch, task_transform):
    """A loader without augmentation transforms its samples once; its batches are bit-identical
    to the ones transformed chunk by chunk every epoch (chunks of 50 samples here)."""
    transform = BatchTransform([0.3], [0.2], task_transform)
    monkeypatch.setattr(loader_module, "CHUNK_ELEMENTS", 50 * 36)
    cached = _loader_of(transform, train=True)
    assert cached.cached
    monkeypatch.setattr(loader_module, "CACHE_BYTES", 0)
    uncached = _loader_of(transform, train=True)
    assert not uncached.cached
    for _ in range(3):  # three epochs, three orders
        got, want = list(cached), list(uncached)
        assert len(got) == len(want) == 9
        for a, b in zip(got, want, strict=True):
            for u, v in zip(a, b, strict=True):
                assert torch.equal(u, v)
    assert cached._transformed is not None and uncached._transformed is None


def test_an_augmenting_loader_is_never_cached_and_evaluation_always_may_be():
    augmenting = BatchTransform([0.0], [1.0], crop_padding=2, horizontal_flip=True)
    assert not _loader_of(augmenting, train=True).cached
    assert _loader_of(augmenting, train=False).cached  # no augmentation in evaluation
    assert _loader_of(IDENTITY, train=True).cached

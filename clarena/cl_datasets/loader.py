"""The in-memory loader of the fast path: batches gathered from device tensors, transformed there.

`InMemoryLoader` is an iterable with `__len__`, which Lightning 2.x accepts wherever it takes a
`DataLoader`. It holds uint8 images on the training device and yields `(x, y, task_ids)` batches:
no worker processes, no per-sample Python, no host-to-device copy per batch.

- **Reproducible.** The order of epoch $e$ is a permutation drawn from a generator seeded with
  `(seed, e)`; Lightning calls `loader.sampler.set_epoch(e)` before each epoch (as it does for
  `DistributedSampler`), and outside Lightning each new iteration advances the epoch by one.
- **Sharded under DDP.** When `torch.distributed` is initialised with $W$ processes, rank $r$ takes
  positions $r, r + W, r + 2W, \\dots$ of the epoch's order, so the ranks see disjoint parts. For
  training, the order is first padded by wrapping around to a multiple of $W$ (as
  `DistributedSampler` does), so every rank runs the same number of steps. For evaluation nothing is
  duplicated (pooled metrics stay exact): each rank splits its part into the same number of batches
  $\\lceil \\lceil N/W \\rceil / B \\rceil$, of nearly equal sizes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from clarena.cl_datasets.transforms import BatchTransform

CHUNK_ELEMENTS = 1 << 22
"""About how many image values (4 Mi: 16 MiB as float32) are transformed in one go."""

CACHE_BYTES = 512 << 20
"""A loader whose batches are a fixed function of its samples (no augmentation) and whose
transformed samples take at most this many bytes (512 MiB as float32: a Fashion-MNIST task takes
38 MiB, all of CIFAR-100's training set 614 MiB) transforms them once, at its first epoch, and then
only gathers its batches from them: the transform (uint8 to float, normalisation, the task's
permutation or rotation) of every epoch was most of a small model's step."""


def _mixed_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from several integers (numpy's `SeedSequence`)."""
    state = np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def _world() -> tuple[int, int]:
    """`(rank, world_size)` of the initialised process group, else `(0, 1)`."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochSampler:
    """The seeded order of one epoch; `set_epoch` is called by Lightning before each epoch."""

    def __init__(self, num_samples: int, shuffle: bool, seed: int) -> None:
        """Store the settings; the epoch starts at 0."""
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration uses."""
        self.epoch = int(epoch)

    def order(self) -> torch.Tensor:
        """The positions `0..num_samples-1` in this epoch's order (CPU, int64)."""
        if not self.shuffle:
            return torch.arange(self.num_samples)
        generator = torch.Generator().manual_seed(_mixed_seed(self.seed, self.epoch))
        return torch.randperm(self.num_samples, generator=generator)


class EpochBatches:
    """The batches of one epoch as positions: the seeded order, its DDP shard, the batch sizes.

    Shared by the in-memory and the lazy loader, so both cut an epoch, and shard it across ranks,
    the same way (see the module's docstring).
    """

    def __init__(
        self, num_samples: int, batch_size: int, train: bool, drop_last: bool, seed: int
    ) -> None:
        """Store the settings (`train`: shuffle every epoch and pad shards under DDP)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size = int(batch_size)
        self.train = train
        self.drop_last = drop_last and train
        self.seed = int(seed)
        self.sampler = EpochSampler(int(num_samples), shuffle=train, seed=self.seed)
        """The epoch's order; Lightning finds it here and calls its `set_epoch`."""
        self.batch_sampler = None  # Lightning reads `sampler` and `batch_sampler` as a pair

    @property
    def num_samples(self) -> int:
        """Samples in the whole loader (all ranks together, before padding)."""
        return self.sampler.num_samples

    def _shard_size(self, rank: int, world: int) -> int:
        n = self.num_samples
        if world == 1:
            return n
        if self.train:
            return math.ceil(n / world)
        return len(range(rank, n, world))

    def _num_batches(self, rank: int, world: int) -> int:
        size = self._shard_size(rank, world)
        if self.drop_last:
            return size // self.batch_size
        if world > 1 and not self.train:
            return math.ceil(math.ceil(self.num_samples / world) / self.batch_size)
        return math.ceil(size / self.batch_size)

    def __len__(self) -> int:
        """The number of batches this process iterates."""
        return self._num_batches(*_world())

    def _batch_sizes(self, num_ordered: int, rank: int, world: int) -> list[int]:
        num_batches = self._num_batches(rank, world)
        if world > 1 and not self.train:  # the same number of batches on every rank
            if num_batches == 0:
                return []
            base, extra = divmod(num_ordered, num_batches)
            return [base + 1] * extra + [base] * (num_batches - extra)
        full = [self.batch_size] * min(num_batches, num_ordered // self.batch_size)
        rest = num_ordered - len(full) * self.batch_size
        return full + ([rest] if len(full) < num_batches and rest > 0 else [])

    def next_epoch(self, rank: int, world: int) -> tuple[int, torch.Tensor, list[int]]:
        """`(epoch, order, sizes)` of the current epoch for this rank, then advance the epoch.

        `order` holds this rank's positions (CPU, int64) in batch order, `sizes` the batch sizes
        that cut it (they may leave a tail of `order` unused when `drop_last`).
        """
        epoch = self.sampler.epoch
        order = self.sampler.order()
        if world > 1:
            if self.train and order.numel() % world:
                missing = math.ceil(order.numel() / world) * world - order.numel()
                order = torch.cat(
                    [order, order.repeat(math.ceil(missing / order.numel()))[:missing]]
                )
            order = order[rank::world]
        self.sampler.set_epoch(epoch + 1)
        return epoch, order, self._batch_sizes(order.numel(), rank, world)


class InMemoryLoader(EpochBatches):
    """Batches `(x float32 (B,C,H,W), y int64 (B,), task_ids int64 (B,))` from in-memory tensors."""

    def __init__(
        self,
        images: torch.Tensor,
        index: torch.Tensor,
        labels: torch.Tensor,
        task_ids: torch.Tensor,
        transform: BatchTransform,
        batch_size: int,
        train: bool = False,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        """Build a loader over `images[index]`.

        Args:
            images: uint8 `(M, C, H, W)`, the whole source split, on the device batches should use.
            index: int64 `(N,)` rows of `images` that make up this loader's samples.
            labels: int64 `(N,)` labels in the scenario's label space.
            task_ids: int64 `(N,)` the task of each sample (from 1).
            transform: turns uint8 batches into model inputs.
            batch_size: samples per batch (positive).
            train: shuffle every epoch, augment, and pad shards under DDP; else a fixed order.
            drop_last: drop a last incomplete batch (training only).
            seed: the seed of the shuffling and augmentation.
        """
        super().__init__(int(index.shape[0]), batch_size, train, drop_last, seed)
        if not (index.shape == labels.shape == task_ids.shape and index.dim() == 1):
            raise ValueError("index, labels and task_ids must be 1-D tensors of one length")
        device = images.device
        self.images = images
        self.index = index.to(device)
        self.labels = labels.to(device)
        self.task_ids = task_ids.to(device)
        self.transform = transform
        size = self.num_samples * self.images[0].numel() * 4
        self.cached = not transform.augments(train) and size <= CACHE_BYTES
        """Whether the transformed samples are computed once and kept (see `CACHE_BYTES`)."""
        self._transformed: torch.Tensor | None = None
        """With `cached`: the transformed samples, in the loader's sample order."""

    @property
    def device(self) -> torch.device:
        """Where the data and the batches live."""
        return self.images.device

    def _transformed_samples(self) -> torch.Tensor:
        """Every sample transformed, in sample order (computed on first use, a chunk at a time,
        with the same operations the uncached path runs on its batches)."""
        if self._transformed is None:
            per_chunk = max(1, CHUNK_ELEMENTS // max(1, self.images[0].numel()))
            out: torch.Tensor | None = None
            for start in range(0, self.num_samples, per_chunk):
                rows = self.index[start : start + per_chunk]
                task_ids = self.task_ids[start : start + per_chunk]
                x = self.transform(self.images.index_select(0, rows), task_ids)
                if out is None:
                    out = x.new_empty((self.num_samples, *x.shape[1:]))
                out[start : start + x.shape[0]] = x
            if out is None:  # no samples
                out = torch.empty((0, *self.images.shape[1:]), device=self.device)
            self._transformed = out
        return self._transformed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield this process's batches of the current epoch, then advance the epoch.

        Consecutive batches are gathered and transformed together, about `CHUNK_ELEMENTS` values
        at a time (fewer, larger kernels), and handed out as views of that chunk.
        """
        rank, world = _world()
        epoch, order, sizes = self.next_epoch(rank, world)
        order = order.to(self.device)
        generator = None
        if self.train:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(_mixed_seed(self.seed, epoch, rank, 1))
        cache = self._transformed_samples() if self.cached else None
        per_chunk = max(1, CHUNK_ELEMENTS // max(1, self.images[0].numel()))
        first, start = 0, 0
        while first < len(sizes):
            last, count = first, 0
            while last < len(sizes) and (count == 0 or count + sizes[last] <= per_chunk):
                count += sizes[last]
                last += 1
            positions = order[start : start + count]
            task_ids = self.task_ids.index_select(0, positions)
            if cache is not None:
                x = cache.index_select(0, positions)
            else:
                rows = self.index.index_select(0, positions)
                images = self.images.index_select(0, rows)
                x = self.transform(images, task_ids, generator, self.train)
            labels = self.labels.index_select(0, positions)
            split = sizes[first:last]
            yield from zip(x.split(split), labels.split(split), task_ids.split(split), strict=True)
            first, start = last, start + count

"""The lazy path: images read from disk through `DataLoader` workers, for data larger than memory.

`prepare_indexed` checks an `IndexedSource` before training (every header it can read, one output
size, a deterministic test pipeline) and chooses where its images live (`in_memory`): decoded once
into a `SourceData` (the in-memory fast path) when they fit the memory budget and need no per-epoch
transform, else read lazily. It logs what it chose and why.

`LazyLoader` is the lazy counterpart of `InMemoryLoader`, and cuts and shards its epochs with the
same `EpochBatches`: the order of epoch $e$ is a function of `(seed, e)`, rank $r$ of $W$ takes
positions $r, r + W, \\dots$, so a resume replays an epoch exactly and DDP shards it as the
in-memory path does. Worker processes decode images and run the per-image v2 pipeline; a random
training transform of the sample at position $p$ in epoch $e$ draws from a generator seeded with
`(seed, e, p)`, whichever worker (or rank) reads it. Batches of uint8 images then reach the
training device (pinned, non-blocking copies on CUDA), where the shared `BatchTransform` applies
the task transform, the crop/flip augmentation and the normalisation, as on the in-memory path.
No random number is drawn from the process's global generator (the `DataLoader`'s worker seeds come
from a generator of its own), so the training's own random stream is that of the in-memory path.

A file that fails to decode mid-run stops the run with `ImageError` naming it; the run folder's
checkpoints are untouched, so the run resumes once the file is replaced.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clarena.cl_datasets.images import ImageError
from clarena.cl_datasets.indexed import IndexedSource
from clarena.cl_datasets.loader import EpochBatches, _mixed_seed, _world
from clarena.cl_datasets.pipeline import (
    ImagePipeline,
    read_cached_stats,
    stats_key,
    write_cached_stats,
)
from clarena.cl_datasets.sources import SourceData
from clarena.cl_datasets.transforms import BatchTransform, channel_histogram, histogram_stats

log = logging.getLogger(__name__)

IN_MEMORY = ("auto", True, False)
"""The values of `in_memory`."""


def default_memory_budget() -> int:
    """Half of the memory available now (bytes), the default budget of `in_memory: auto`."""
    try:
        import psutil

        return int(psutil.virtual_memory().available) // 2
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2


class SourceImages(torch.utils.data.Dataset):
    """Images of a source by position: `rows[p]` of `split`, through the pipeline (picklable)."""

    def __init__(
        self,
        source: IndexedSource,
        split: str,
        rows: np.ndarray,
        pipeline: ImagePipeline,
        train: bool = False,
        seed: int = 0,
    ) -> None:
        """Hold what a worker needs to read position `p`; `train` runs the training pipeline."""
        self.source, self.split, self.rows = source, split, np.asarray(rows, dtype=np.int64)
        self.pipeline, self.train, self.seed = pipeline, train, int(seed)
        self.finish: tuple[BatchTransform, torch.Tensor] | None = None
        """`(transform, task_ids)`: also run the batch transform on each image here (a loader
        for the CPU without random batch augmentation sets it, so the workers share the work)."""

    def __len__(self) -> int:
        """The number of positions."""
        return int(self.rows.shape[0])

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        """`(image, position)` for a position, or for `(position, epoch)` when training: uint8,
        or float32 when `finish` is set."""
        position, epoch = key if isinstance(key, tuple) else (key, 0)
        x = self.source.read_raw(self.split, int(self.rows[position]))
        if self.train and self.pipeline.random_train:
            with torch.random.fork_rng(devices=[]):
                # the CPU generator only: torch.manual_seed also queues a seed for every
                # accelerator backend, formatting a stack trace each time (1.7 ms an image)
                torch.default_generator.manual_seed(_mixed_seed(self.seed, epoch, position, 2))
                x = self.pipeline(x, train=True)
        else:
            x = self.pipeline(x)
        if self.finish is not None:
            transform, task_ids = self.finish
            x = transform(x[None], task_ids[position : position + 1])[0]
        return x, position


CHUNK = 256
"""Images one worker job handles in the passes over a whole source (checks, decoding, statistics):
one message per chunk, not per image (per-image messages made decoding Fashion-MNIST's 70,000 PNGs
with two workers 4x slower than a chunk at a time)."""


class _Chunks(torch.utils.data.Dataset):
    """Job `k` of a pass over one split: rows `k*CHUNK ...` (picklable, run by workers)."""

    def __init__(self, source: IndexedSource, split: str, rows: Any, job: str, pipeline=None):
        self.source, self.split, self.rows, self.job = source, split, rows, job
        self.pipeline = pipeline

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / CHUNK)

    def __getitem__(self, k: int) -> tuple[int, Any]:
        rows = [int(r) for r in self.rows[k * CHUNK : (k + 1) * CHUNK]]
        if self.job == "header":
            headers = [self.source.header(self.split, r) for r in rows]
            return k, [(h.height, h.width, h.grey) for h in headers]
        assert self.pipeline is not None
        x = torch.stack([self.pipeline(self.source.read_raw(self.split, r)) for r in rows])
        return k, (channel_histogram(x) if self.job == "histogram" else x)


def _passes(jobs: _Chunks, num_workers: int) -> Iterator[tuple[int, Any]]:
    """The results of every job of a pass, in any order, with workers' errors as one line."""
    loader = torch.utils.data.DataLoader(
        jobs, batch_size=None, num_workers=num_workers, generator=torch.Generator().manual_seed(0)
    )
    try:
        yield from loader
    except (ImageError, ValueError) as err:
        raise _worker_error(err) from None


def _worker_error(err: Exception) -> Exception:
    """A `DataLoader` worker's exception as one line: the original message, not the traceback."""
    text = str(err)
    if "DataLoader worker" in text or "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        text = last.split("Error: ", 1)[-1].strip()
    if text == str(err):
        return err
    return ImageError(text) if isinstance(err, ImageError) else ValueError(text)


def decode_all(
    source: IndexedSource, pipeline: ImagePipeline, shape: tuple[int, ...], num_workers: int
) -> SourceData:
    """Every image of the source through the test pipeline (each `shape`), as a `SourceData`."""
    parts = []
    for split, labels in (("train", source.train_y), ("test", source.test_y)):
        out = torch.empty((int(labels.shape[0]), *shape), dtype=torch.uint8)
        jobs = _Chunks(source, split, np.arange(labels.shape[0]), "decode", pipeline)
        for k, x in _passes(jobs, num_workers):
            out[k * CHUNK : k * CHUNK + x.shape[0]] = x
        parts.append(out)
    return SourceData(
        source.name,
        parts[0],
        source.train_y,
        parts[1],
        source.test_y,
        source.num_classes,
        class_names=source.class_names,
    )


def source_stats(
    source: IndexedSource, pipeline: ImagePipeline, num_workers: int
) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the training images through the test pipeline: read from the
    cache when the source's content key is known there, else computed (in workers) and cached."""
    content = source.content_key()
    key = stats_key(content, pipeline) if content is not None else None
    if key is not None and (cached := read_cached_stats(key, source.channels or 3)) is not None:
        log.info("%s: normalisation statistics read from the cache (%s)", source.name, key[:12])
        return cached
    histogram = torch.zeros((source.channels or 3, 256), dtype=torch.int64)
    jobs = _Chunks(source, "train", np.arange(source.train_y.shape[0]), "histogram", pipeline)
    for _, part in _passes(jobs, num_workers):
        histogram += part
    mean, std = histogram_stats(histogram)
    if key is not None:
        write_cached_stats(key, mean, std)
    return mean, std


def check_headers(source: IndexedSource, num_workers: int) -> dict[tuple[int, int], str]:
    """Read the headers the source offers (every file's), set its `channels`; return each
    distinct `(height, width)` with the first image of that size.

    Raises:
        ImageError: for an image that cannot be read, naming it.
    """
    sizes: dict[tuple[int, int], tuple[str, int]] = {}
    grey = True
    for split in ("train", "test"):
        rows = source.probe_rows(split)
        for k, headers in _passes(_Chunks(source, split, rows, "header"), num_workers):
            for i, (height, width, is_grey) in enumerate(headers):
                sizes.setdefault((height, width), (split, rows[k * CHUNK + i]))
                grey = grey and is_grey
    source.channels = 1 if grey else 3
    return {size: source.where(*at) for size, at in sizes.items()}  # in the order met


@dataclass
class Prepared:
    """What `prepare_indexed` found and chose."""

    input_shape: tuple[int, int, int]
    channels: int
    memory: bool
    """Whether the images are decoded into memory (else read lazily)."""
    choice: str
    """One line saying where the images live and why."""
    data: SourceData | None = None
    """The decoded source once `load_prepared` ran (in memory only)."""


_LAST: dict[tuple, Prepared] = {}
"""The last source prepared in this process, by its key: a run builds its dataset twice (the
checks before the run folder exists, then the run), and the second reads nothing again."""


def _key(source: IndexedSource, pipeline: ImagePipeline, *settings: Any) -> tuple | None:
    files = source.files_key()
    if files is None:
        return None
    return (type(source).__name__, files, json.dumps(pipeline.spec, sort_keys=True), *settings)


def prepare_indexed(
    source: IndexedSource,
    pipeline: ImagePipeline,
    in_memory: str | bool = "auto",
    memory_budget_mb: float | None = None,
    num_workers: int = 0,
) -> Prepared:
    """Check an indexed source before training and decide where its images live.

    Args:
        source: the source.
        pipeline: its per-image transforms.
        in_memory: `True` (decode once into memory), `False` (read lazily) or `"auto"`: in
            memory when the decoded images fit the budget and no training transform runs per
            epoch.
        memory_budget_mb: the budget in MiB (`None`: half of the memory available now).
        num_workers: worker processes for decoding.

    Raises:
        ValueError: an unreadable image, mixed sizes without a resize, a bad pipeline, or
            `in_memory=true` with a per-image training pipeline.
    """
    if in_memory not in IN_MEMORY:
        raise ValueError(f"in_memory must be auto, true or false, got {in_memory!r}")
    key = _key(source, pipeline, in_memory, memory_budget_mb)
    if key is not None and key in _LAST:
        source.channels = _LAST[key].channels
        log.info(_LAST[key].choice)  # again: the run's log may have opened since
        return _LAST[key]
    sizes = check_headers(source, num_workers)
    if not sizes:
        raise ValueError(f"{source.name}: no image to train on: add images")
    shape = pipeline.output_shape(source.channels or 3, list(sizes), list(sizes.values()))
    decoded = len(source) * math.prod(shape)
    budget = default_memory_budget() if memory_budget_mb is None else memory_budget_mb * 2**20
    fits = decoded <= budget
    if in_memory is True and pipeline.random_train:
        raise ValueError(
            "in_memory=true cannot run cl_dataset.transforms.train per image and epoch: set "
            "in_memory=false (or auto), or use augment=true (crop and flip on the device)"
        )
    memory = in_memory is True or (in_memory == "auto" and fits and not pipeline.random_train)
    why = (
        "in_memory=true"
        if in_memory is True
        else "in_memory=false"
        if in_memory is False
        else "transforms.train runs per image"
        if pipeline.random_train
        else f"{'within' if fits else 'over'} the budget of {budget / 2**20:,.0f} MiB"
    )
    choice = (
        f"{source.name}: {len(source):,} images of {shape[0]}x{shape[1]}x{shape[2]}, "
        f"{decoded / 2**20:,.1f} MiB decoded: {'in memory' if memory else 'read lazily'} ({why})"
    )
    log.info(choice)
    prepared = Prepared(shape, source.channels or 3, memory, choice)
    _LAST.clear()
    if key is not None:
        _LAST[key] = prepared
    return prepared


def load_prepared(
    prepared: Prepared, source: IndexedSource, pipeline: ImagePipeline, num_workers: int
) -> SourceData | None:
    """The decoded source of a `prepared` one that lives in memory (decoded on the first call),
    `None` for one read lazily."""
    if prepared.memory and prepared.data is None:
        prepared.data = decode_all(source, pipeline, prepared.input_shape, num_workers)
    return prepared.data


class LazyLoader(EpochBatches):
    """Batches `(x float32 (B,C,H,W), y int64 (B,), task_ids int64 (B,))` read through workers."""

    def __init__(
        self,
        images: SourceImages,
        labels: torch.Tensor,
        task_ids: torch.Tensor,
        transform: BatchTransform,
        batch_size: int,
        device: torch.device,
        train: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        """Build the loader over `images` (position `p` has `labels[p]`, `task_ids[p]`).

        Args:
            images: the samples by position (its `train` says whether training transforms run).
            labels: int64 `(N,)` labels in the scenario's label space.
            task_ids: int64 `(N,)` the task of each sample (from 1).
            transform: the batch transform on the device (task transform, augmentation, norm).
            batch_size: samples per batch.
            device: where batches go.
            train: shuffle every epoch, augment, pad shards under DDP; else a fixed order.
            drop_last: drop a last incomplete batch (training only).
            seed: the seed of the order and of every random transform.
            num_workers: `DataLoader` worker processes (0: read in this process).
            pin_memory: page-locked batches for faster copies to a GPU.
            persistent_workers: keep the workers between epochs.
        """
        super().__init__(len(images), batch_size, train, drop_last, seed)
        if not (labels.shape == task_ids.shape == (len(images),)):
            raise ValueError("labels and task_ids must be 1-D tensors, one entry per image")
        self.device = torch.device(device)
        self.labels, self.task_ids = labels.to(self.device), task_ids.to(self.device)
        self.transform = transform
        self.in_workers = self.device.type == "cpu" and not transform.augments(train)
        """Whether the workers run the batch transform too (training on the CPU, no random
        batch augmentation): elementwise per image, so the batches are the same either way."""
        if self.in_workers:
            images.finish = (transform, self.task_ids)
        self.dataloader = torch.utils.data.DataLoader(
            images,
            batch_sampler=_PositionBatches(self),
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers and num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),  # not the training's global RNG
        )
        """The `DataLoader` that reads the images (its batch sampler is this loader's plan)."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield this process's batches of the current epoch, then advance the epoch."""
        epoch, rank = self.sampler.epoch, _world()[0]
        generator = None
        if self.train:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(_mixed_seed(self.seed, epoch, rank, 1))
        non_blocking = self.device.type == "cuda"
        try:
            for x, positions in self.dataloader:
                positions = positions.to(self.device, non_blocking=non_blocking)
                task_ids = self.task_ids.index_select(0, positions)
                x = x.to(self.device, non_blocking=non_blocking)
                if not self.in_workers:
                    x = self.transform(x, task_ids, generator, self.train)
                yield x, self.labels.index_select(0, positions), task_ids
        except (ImageError, ValueError) as err:
            raise _worker_error(err) from None


class _PositionBatches:
    """The loader's plan as a `DataLoader` batch sampler: lists of `(position, epoch)`."""

    def __init__(self, owner: LazyLoader) -> None:
        self.owner = owner

    def __len__(self) -> int:
        return len(self.owner)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, order, sizes = self.owner.next_epoch(*_world())
        start = 0
        for size in sizes:
            yield [(int(p), epoch) for p in order[start : start + size].tolist()]
            start += size

"""The compatibility metrics under DDP: two CPU processes (gloo) give the counts of one process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clarena.metrics import CompatibilityCounts, IncompatiblePointsPerClass

NUM_CLASSES = 7
SHARDS = (slice(0, 37), slice(37, 100))  # uneven: 37 points on rank 0, 63 on rank 1


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    targets = torch.randint(0, NUM_CLASSES, (100,), generator=generator)
    old = torch.where(torch.rand(100, generator=generator) < 0.7, targets, (targets + 1) % 7)
    new = torch.where(torch.rand(100, generator=generator) < 0.6, targets, (targets + 2) % 7)
    return old, new, targets


def counts_of(metrics: tuple[CompatibilityCounts, IncompatiblePointsPerClass]) -> dict:
    out = {k: v.item() for k, v in metrics[0].compute().items()}
    out["per_class"] = metrics[1].compute().tolist()
    return out


def update(metrics, old, new, targets, batch: int) -> None:
    for start in range(0, targets.numel(), batch):  # batches of uneven sizes (the last is short)
        part = slice(start, start + batch)
        for metric in metrics:
            metric.update(old[part], new[part], targets[part])


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        old, new, targets = data()
        shard = SHARDS[rank]
        synced = (CompatibilityCounts(), IncompatiblePointsPerClass(NUM_CLASSES))
        local = (
            CompatibilityCounts(sync_on_compute=False),
            IncompatiblePointsPerClass(NUM_CLASSES, sync_on_compute=False),
        )
        for metrics in (synced, local):
            update(metrics, old[shard], new[shard], targets[shard], batch=8 + 5 * rank)
        result = {"synced": counts_of(synced), "local": counts_of(local)}
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_two_processes_give_the_counts_of_one(tmp_path: Path):
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    old, new, targets = data()
    single = (CompatibilityCounts(), IncompatiblePointsPerClass(NUM_CLASSES))
    update(single, old, new, targets, batch=10)
    expected = counts_of(single)
    assert expected["total"] == 100 and sum(expected["per_class"]) == expected["negative_flips"]
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert result["synced"] == expected
        # each process alone saw only its shard: the reduction did the pooling
        assert result["local"]["total"] == SHARDS[rank].stop - SHARDS[rank].start
    local = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True)["local"] for r in (0, 1)]
    for name in ("old_correct", "both_correct", "both_wrong", "negative_flips", "positive_flips"):
        assert local[0][name] + local[1][name] == expected[name]

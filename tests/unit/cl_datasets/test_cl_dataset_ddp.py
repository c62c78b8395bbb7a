"""Under a real process group (gloo, 2 processes) the loaders hand each rank a disjoint part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clarena.cl_datasets import SplitCLDataset

WORLD = 2


def _worker(rank: int, folder: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD
    )
    try:
        data = SplitCLDataset("digits", "CIL", classes_per_task=2, batch_size=32, seed=4)
        data.setup_task(1)
        rows, _ = data.task_samples(1, "train")
        out = {}
        for name, loader in (
            ("train", data.train_dataloader()),
            ("test", data.test_dataloader()[0]),
        ):
            batches = [x.flatten(1).sum(1).tolist() for x, _, _ in loader]
            out[name] = {"len": len(loader), "batches": [len(b) for b in batches]}
            out[name]["keys"] = [round(v, 3) for b in batches for v in b]
        out["num_train"] = rows.numel()
        Path(folder, f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
@pytest.mark.slow  # two processes importing torch and Lightning: about 20 s
def test_two_ranks_see_disjoint_parts(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    # Task 1 = digits 0 and 1: (178 - 44) + (182 - 45) = 271 samples, 10% of each class held out
    # (13 + 14), leaves 244 for training; the test set holds 44 + 45 = 89.
    assert ranks[0]["num_train"] == 244
    for kind, total in (("train", 244), ("test", 89)):
        assert sum(sum(r[kind]["batches"]) for r in ranks) == total  # nothing padded here
        lens = [r[kind]["len"] for r in ranks]
        assert (
            lens[0] == lens[1] == len(ranks[0][kind]["batches"]) == len(ranks[1][kind]["batches"])
        )
    # Training: 244 / 2 = 122 per rank, no padding needed, 4 batches of at most 32.
    assert [r["train"]["batches"] for r in ranks] == [[32, 32, 32, 26]] * 2
    # Test: ranks hold 45 and 44 samples, each split into ceil(45 / 256) = 1 batch.
    assert [r["test"]["batches"] for r in ranks] == [[45], [44]]
    # Identify samples by their pixel sums: the two ranks' parts together are the whole set.
    data = SplitCLDataset("digits", "CIL", classes_per_task=2, batch_size=32, seed=4)
    data.setup_task(1)
    for kind, loader in (("train", data.train_dataloader()), ("test", data.test_dataloader()[0])):
        whole = sorted(round(v, 3) for x, _, _ in loader for v in x.flatten(1).sum(1).tolist())
        assert sorted(ranks[0][kind]["keys"] + ranks[1][kind]["keys"]) == pytest.approx(whole)
    assert torch.distributed.is_available()

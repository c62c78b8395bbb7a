"""Samples per second of one epoch of a task's training loader: clarena's fast path vs torchvision.

Both loaders serve the same samples — task 1 of Split Fashion-MNIST (classes 0 and 1, 12,000
training images) — with the same batch size and shuffling on:

- **clarena**: `SplitCLDataset(...).train_dataloader()`, uint8 tensors in memory, batches gathered
  and normalised on the device (no workers, no PIL).
- **torchvision**: `torchvision.datasets.FashionMNIST` with `ToTensor()` + `Normalize(mean, std)`,
  a `Subset` of the same indices, in a `torch.utils.data.DataLoader(shuffle=True)` with each
  `num_workers` asked for (the per-sample PIL path most tutorials use).

The main process uses `--threads` torch threads (default 1: DataLoader workers use one thread
each, and on a small shared machine more threads only add contention to small kernels).
Each loader runs one warm-up epoch, then `--epochs` timed epochs; the median epoch is reported.
Every batch is consumed by moving it to `--device` and summing it, so neither side can skip work.
Run: `python benchmarks/data_loader_speed.py` (add `--device cuda` on a GPU machine).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _materialise_raw_files(root: Path) -> Path:
    """torchvision's FashionMNIST reads uncompressed IDX files from `<root>/FashionMNIST/raw`."""
    from clarena.cl_datasets.sources import _IDX_FILES, DEBIAN_FASHION_MNIST, _find

    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem in _IDX_FILES:
        found = _find(DEBIAN_FASHION_MNIST, stem)
        if found is None:
            sys.exit(f"missing {stem}: install Debian's dataset-fashion-mnist package")
        with gzip.open(found) if found.suffix == ".gz" else found.open("rb") as src:
            with (raw / stem).open("wb") as dst:
                shutil.copyfileobj(src, dst)
    return root


def _time_epochs(loader, epochs: int, device: torch.device) -> tuple[float, int]:
    """Median seconds of one epoch (after a warm-up epoch) and the samples per epoch."""
    times, samples = [], 0
    for i in range(epochs + 1):
        total, samples = torch.zeros((), device=device), 0
        start = time.perf_counter()
        for x, y, *_ in loader:
            x = x.to(device, non_blocking=True)
            total += x.sum() + y.to(device).sum()
            samples += x.shape[0]
        total.item()  # waits for the device
        if i > 0:
            times.append(time.perf_counter() - start)
    return statistics.median(times), samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--num-workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads of the main process"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    import torchvision
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms

    from clarena.cl_datasets import SplitCLDataset

    data = SplitCLDataset(
        "fashion_mnist", "TIL", num_tasks=5, val_fraction=0.0, batch_size=args.batch_size,
        download=False, device=device, seed=0,
    )  # fmt: skip
    data.setup_task(1)
    fast = data.train_dataloader()
    rows, _ = data.task_samples(1, "train")
    mean, std = data.normalization

    results = {}
    seconds, n = _time_epochs(fast, args.epochs, device)
    results["clarena InMemoryLoader"] = (seconds, n)
    with tempfile.TemporaryDirectory() as tmp:
        root = _materialise_raw_files(Path(tmp))
        pil_set = torchvision.datasets.FashionMNIST(
            str(root),
            train=True,
            transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]),
        )
        subset = Subset(pil_set, rows.tolist())
        for workers in args.num_workers:
            loader = DataLoader(
                subset, batch_size=args.batch_size, shuffle=True, num_workers=workers,
                persistent_workers=workers > 0, pin_memory=device.type == "cuda",
            )  # fmt: skip
            results[f"torchvision DataLoader, num_workers={workers}"] = _time_epochs(
                loader, args.epochs, device
            )
    baseline = min(s for name, (s, _) in results.items() if name.startswith("torchvision"))
    print(
        f"Task 1 of Split Fashion-MNIST: {n} training samples, batch size {args.batch_size}, "
        f"device {device}, torch threads {torch.get_num_threads()}, median of {args.epochs} epochs"
    )
    print(f"{'loader':<40} {'s/epoch':>9} {'samples/s':>12} {'speed-up':>9}")
    for name, (s, samples) in results.items():
        print(f"{name:<40} {s:>9.3f} {samples / s:>12,.0f} {baseline / s:>8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

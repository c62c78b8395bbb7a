"""Images per second reaching the training step from a folder of JPEGs: clarena's lazy path against
plain torchvision `ImageFolder` + `DataLoader`, with the same workers and transforms; peak memory.

The script writes `--images` RGB JPEGs of 224×224 (20 classes; smooth random pictures, quality
90) into a folder outside the repository (`--dir`, default a new temporary folder, removed at the
end unless `--keep`), then measures each loader in a fresh process, one after the other:

- **clarena**: `SplitCLDataset("folder", in_memory=False)`, one task of all classes, its training
  loader (`LazyLoader`: `DataLoader` workers decode with Pillow and run the v2 pipeline on uint8
  tensors; normalisation on the batch in the main process);
- **torchvision**: `ImageFolder(train/, transform=v2.Compose([PILToTensor, <the same v2
  pipeline>, ToDtype(float32, scale=True), Normalize]))` in a `DataLoader` with the same batch
  size, workers, `pin_memory` and `persistent_workers`, shuffled.

The pipeline is `RandomResizedCrop(224)` and `RandomHorizontalFlip()`. A "training step" consumes
each batch (`x.sum()` after the copy to the device, the CPU here). Each loader runs `--repeats`
times, the two alternating (a change of the machine's load hits both). Reported per run: images
per second over `--epochs` epochs from the first `iter()` (worker start-up included) and over all
but the first batch; the peak resident memory of the main process (`ru_maxrss`) and the peak
proportional set size (PSS: shared pages divided among the processes that share them) of the main
process and its workers together, sampled every 0.2 s; for clarena the checks before training (a
header read of every file). Then the medians and their ratio, and the largest peaks.

Usage:
    python benchmarks/folder_loading.py --images 20000 --workers 2 --batch-size 64 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

CLASSES = 20
SIZE = 224
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TRAIN = [{"name": "RandomResizedCrop", "size": SIZE}, {"name": "RandomHorizontalFlip"}]


def _write(job: tuple[str, int, int]) -> int:
    from PIL import Image

    path, label, index = job
    rng = np.random.default_rng([label, index])
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # smooth: like a photo's file size
    image = Image.fromarray(coarse).resize((SIZE, SIZE), Image.BICUBIC)
    image.save(path, quality=90)
    return os.path.getsize(path)


def write_folder(root: Path, images: int, test_per_class: int = 5) -> int:
    """`root/train/<class>/*.jpg` (`images` in all) and `root/test/<class>/*.jpg`; total bytes."""
    jobs = []
    for split, per_class in (("train", images // CLASSES), ("test", test_per_class)):
        for c in range(CLASSES):
            folder = root / split / f"class_{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            offset = 0 if split == "train" else 10**6
            jobs += [(str(folder / f"{i:06d}.jpg"), c, offset + i) for i in range(per_class)]
    with Pool(os.cpu_count()) as pool:
        return sum(pool.imap_unordered(_write, jobs, chunksize=256))


class PeakPSS:
    """The peak PSS of this process and its children, sampled in a thread."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self.process, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for proc in [self.process, *self.process.children(recursive=True)]:
                try:
                    total += proc.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _clarena_loader(root: Path, args: argparse.Namespace):
    from clarena.cl_datasets import SplitCLDataset

    start = time.perf_counter()
    data = SplitCLDataset(
        "folder", "TIL", root=root, classes_per_task=CLASSES, batch_size=args.batch_size,
        val_fraction=0.0, in_memory=False, num_workers=args.workers, pin_memory=False,
        transforms={"train": TRAIN}, normalize_mean=MEAN, normalize_std=STD,
    )  # fmt: skip
    data.setup_task(1)
    checks = time.perf_counter() - start
    return data.train_dataloader(), {"checks_s": round(checks, 2), "loading": data.loading}


def _torchvision_loader(root: Path, args: argparse.Namespace):
    import torch
    import torchvision.transforms.v2 as v2
    from torchvision.datasets import ImageFolder

    transform = v2.Compose(
        [v2.PILToTensor(), v2.RandomResizedCrop(SIZE), v2.RandomHorizontalFlip(),
         v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    )  # fmt: skip
    dataset = ImageFolder(str(root / "train"), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
        pin_memory=False, persistent_workers=args.workers > 0,
    )  # fmt: skip
    return loader, {}


def measure(kind: str, root: Path, args: argparse.Namespace) -> dict:
    """Iterate one loader for `args.epochs` epochs in this process; the numbers as a dict."""
    import torch

    torch.set_num_threads(1)
    pss = PeakPSS()
    loader, extra = (_clarena_loader if kind == "clarena" else _torchvision_loader)(root, args)
    images, first_batch_end, start = 0, None, time.perf_counter()
    for epoch in range(args.epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        for batch in loader:
            x = batch[0].to("cpu")
            x.sum()  # the training step consumes the batch
            images += x.shape[0]
            if first_batch_end is None:
                first_batch_end, first_images = time.perf_counter(), images
    total = time.perf_counter() - start
    steady = time.perf_counter() - first_batch_end
    return {
        "loader": kind,
        "images": images,
        "seconds": round(total, 2),
        "images_per_s": round(images / total, 1),
        "images_per_s_after_first_batch": round((images - first_images) / steady, 1),
        "peak_rss_main_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_pss_all_mib": round(pss.stop() / 2**20, 1),
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each loader")
    parser.add_argument("--dir", type=Path, default=None, help="where the JPEGs go (kept)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--measure", choices=["clarena", "torchvision"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # a child process: one loader
        print(json.dumps(measure(args.measure, args.dir, args)))
        return
    root = args.dir or Path(tempfile.mkdtemp(prefix="clarena_folder_loading_"))
    try:
        if not (root / "train").is_dir():
            start = time.perf_counter()
            size = write_folder(root, args.images)
            print(f"wrote {args.images:,} JPEGs of {SIZE}x{SIZE} ({size / 2**20:,.0f} MiB on disk) "
                  f"to {root} in {time.perf_counter() - start:.0f} s")  # fmt: skip
        decoded = args.images * SIZE * SIZE * 3
        print(f"decoded size of the training images: {decoded / 2**30:.2f} GiB")
        results: dict[str, list[dict]] = {"torchvision": [], "clarena": []}
        for repeat in range(args.repeats):  # alternating order: a load change hits both
            kinds = ("torchvision", "clarena") if repeat % 2 == 0 else ("clarena", "torchvision")
            for kind in kinds:
                command = [sys.executable, __file__, "--measure", kind, "--dir", str(root),
                           "--workers", str(args.workers), "--batch-size", str(args.batch_size),
                           "--epochs", str(args.epochs)]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                results[kind].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[kind][-1]))
        for key in ("images_per_s", "images_per_s_after_first_batch"):
            base = float(np.median([r[key] for r in results["torchvision"]]))
            ours = float(np.median([r[key] for r in results["clarena"]]))
            print(f"{key}: clarena {ours:.1f}, torchvision {base:.1f}: {ours / base:.2f}x")
        for key in ("peak_rss_main_mib", "peak_pss_all_mib"):
            peaks = {kind: max(r[key] for r in runs) for kind, runs in results.items()}
            print(f"{key}: clarena {peaks['clarena']}, torchvision {peaks['torchvision']}")
    finally:
        if args.dir is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Your own data end to end: real Fashion-MNIST as PNG folders against `split_fmnist`; a lazy run
killed at any step, or stopped by a file that breaks mid-run, resumes bit-identically."""

from __future__ import annotations

import csv
import json
import multiprocessing
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_resume_random_kills import assert_identical
from test_train_support import clarena

from clarena.cl_datasets import SplitCLDataset, load_source
from clarena.cl_datasets.formats import read_idx

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def _write_pngs(job: tuple[Path, np.ndarray, list[int], int]) -> None:
    folder, images, labels, first = job
    for i, (image, label) in enumerate(zip(images, labels, strict=True), start=first):
        Image.fromarray(image).save(folder / str(label) / f"{i:05d}.png", compress_level=1)


def write_png_folders(root: Path, source) -> Path:
    """`root/{train,test}/<class>/<index>.png` of a source's uint8 grey images (two processes)."""
    jobs = []
    for split, x, y in (("train", source.train_x, source.train_y),
                        ("test", source.test_x, source.test_y)):  # fmt: skip
        for c in range(source.num_classes):
            (root / split / str(c)).mkdir(parents=True, exist_ok=True)
        pixels, labels = x[:, 0].numpy(), y.tolist()
        for i in range(0, len(labels), 5000):
            jobs.append((root / split, pixels[i : i + 5000], labels[i : i + 5000], i))
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(_write_pngs, jobs)
    return root


def final_average(run: Path) -> float:
    rows = list(csv.DictReader((run / "results" / "accuracy_matrix.csv").open()))
    return float(rows[-1]["average_accuracy"])


@pytest.mark.skipif(not FMNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_fashion_mnist_as_png_folders_matches_split_fmnist(tmp_path):
    images = read_idx(FMNIST / "train-images-idx3-ubyte.gz")  # clarena's own IDX reader
    labels = read_idx(FMNIST / "train-labels-idx1-ubyte.gz")
    source = load_source("fashion_mnist", data_root=tmp_path)
    assert np.array_equal(source.train_x[:, 0].numpy(), images)
    root = write_png_folders(tmp_path / "fmnist", source)

    folder = SplitCLDataset("folder", "TIL", root=root, classes_per_task=2, num_workers=2)
    builtin = SplitCLDataset("fashion_mnist", "TIL", data_root=tmp_path, classes_per_task=2)
    assert folder.class_names == tuple(str(c) for c in range(10))
    folder.setup_task(1)
    assert "in memory" in folder.loading
    # exactly the source's pixels, class by class (PNG folders list a class's files in order)
    for split, x, y in (("train", source.train_x, source.train_y),
                        ("test", source.test_x, source.test_y)):  # fmt: skip
        decoded = folder.data.train_x if split == "train" else folder.data.test_x
        by_class = torch.cat([x[y == c] for c in range(10)])
        assert torch.equal(decoded, by_class), split
    assert torch.bincount(torch.from_numpy(labels.astype(np.int64))).tolist() == [6000] * 10
    for t in range(1, 6):
        for split in ("train", "val", "test"):
            assert folder.task_samples(t, split)[0].numel() == (
                builtin.task_samples(t, split)[0].numel()
            ), (t, split)

    # a fixed-seed TIL run of each lands within one point of the other
    budget = ("scenario=TIL", "seed=2", "trainer.max_epochs=1", "logger=csv")
    runs = {}
    for name, dataset in (("run_fmnist", ("cl_dataset=split_fmnist", f"data_root={tmp_path}")),
                          ("run_folder", ("cl_dataset=split_folder", f"cl_dataset.root={root}",
                                      "cl_dataset.num_tasks=5", "cl_dataset.batch_size=64",
                                      "cl_dataset.eval_batch_size=512"))):  # fmt: skip
        run = tmp_path / name
        done = clarena("train", *budget, *dataset, f"output_dir={run}", cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = final_average(run)
    assert abs(runs["run_folder"] - runs["run_fmnist"]) <= 1.0, runs
    names = json.loads((tmp_path / "run_folder" / "results" / "metrics.json").read_text())
    assert names["class_names"] == ["0 | 2 | 4 | 6 | 8", "1 | 3 | 5 | 7 | 9"]


# ------------------------------------------------------------------ the lazy path resumes exactly
LAZY = (
    "cl_dataset=split_folder",
    "cl_dataset.in_memory=false",
    "cl_dataset.num_workers=1",
    "cl_dataset.num_tasks=2",
    "cl_dataset.batch_size=32",
    "cl_dataset.normalize_mean=[0.3]",  # no pass over the files before training
    "cl_dataset.normalize_std=[0.35]",
    "cl_dataset.transforms.train=[{name: RandomAffine, degrees: 10}]",
    "cl_algorithm=er",
    "scenario=CIL",
    "seed=3",
    "logger=csv",
    "trainer.max_epochs=-1",
    "trainer.max_steps=20",
    "trainer.checkpoint_every_n_steps=5",
)


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    return write_png_folders(tmp_path_factory.mktemp("digits") / "d", load_source("digits"))


@pytest.fixture(scope="module")
def lazy_reference(digits_folder, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("lazy_reference")
    done = clarena("train", *LAZY, f"cl_dataset.root={digits_folder}", f"output_dir={tmp / 'r'}",
                   cwd=tmp)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return tmp / "r"


def test_lazy_run_killed_inside_an_epoch_resumes_bit_identically(
    digits_folder, lazy_reference, tmp_path
):
    """Killed at step 13 of task 2: batch 5 of its second epoch (8 batches an epoch), 3 steps
    after the last within-task checkpoint."""
    run = tmp_path / "killed"
    args = (*LAZY, f"cl_dataset.root={digits_folder}", f"output_dir={run}")
    killed = clarena("train", *args, cwd=tmp_path, env={"CLARENA_KILL_AT": "task:2:step:13"})
    assert killed.returncode == -signal.SIGKILL
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_identical(run, lazy_reference)


def test_a_file_broken_mid_run_is_named_and_the_run_resumes(digits_folder, lazy_reference,
                                                            tmp_path):  # fmt: skip
    copy = tmp_path / "d"
    for f in digits_folder.rglob("*.png"):
        (copy / f.relative_to(digits_folder)).parent.mkdir(parents=True, exist_ok=True)
        (copy / f.relative_to(digits_folder)).write_bytes(f.read_bytes())
    # class 3 is in task 2; of its first three files one at least is a training sample (10% of
    # the class is held out for validation), and the first of those the epoch reaches is named
    broken = sorted((copy / "train" / "3").iterdir())[:3]
    good = [f.read_bytes() for f in broken]
    for f, data in zip(broken, good, strict=True):
        f.write_bytes(data[:50])  # the header survives: the checks before training pass
    run = tmp_path / "run"
    failed = clarena("train", *LAZY, f"cl_dataset.root={copy}", f"output_dir={run}", cwd=tmp_path)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert "replace or delete the file" in last, last
    assert any(f"cannot read image '{f}'" in last for f in broken), last
    assert (run / "checkpoints" / "after_task_1.pt").is_file()
    for f, data in zip(broken, good, strict=True):
        f.write_bytes(data)
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_identical(run, lazy_reference)


@pytest.mark.ddp
def test_ddp_on_the_lazy_path_equals_ddp_in_memory(digits_folder, tmp_path):
    """Two gloo ranks: the lazy path shards every epoch as the in-memory path does, so without
    augmentation the two runs train on the same batches and end with the same accuracy matrix."""
    args = ("cl_dataset=split_folder", f"cl_dataset.root={digits_folder}", "cl_dataset.num_tasks=2",
            "cl_algorithm=finetuning", "scenario=TIL", "seed=2", "logger=none",
            "trainer.max_epochs=2", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
            "cl_dataset.batch_size=16")  # fmt: skip
    matrices = []
    for in_memory in ("true", "false"):
        run = tmp_path / f"in_memory_{in_memory}"
        extra = (f"cl_dataset.in_memory={in_memory}", "cl_dataset.num_workers=1")
        done = clarena("train", *args, *extra, f"output_dir={run}", cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        matrices.append((run / "results" / "accuracy_matrix.csv").read_text())
    assert matrices[0] == matrices[1]

"""The lazy path: the same batches as in memory, epochs a function of (seed, epoch) whatever the
workers, per-image v2 pipelines, cached statistics, `in_memory: auto`, a corrupt file mid-run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from cl_dataset_helpers import write_image_folder
from PIL import Image

import clarena.cl_datasets.lazy as lazy
import clarena.cl_datasets.loader as loader_module
from clarena.cl_datasets import ImageError, LazyLoader, PermutedCLDataset, SplitCLDataset
from clarena.cl_datasets.pipeline import read_cached_stats

FLIP = {"train": [{"name": "RandomResizedCrop", "size": 5}, {"name": "RandomHorizontalFlip"}],
        "test": [{"name": "CenterCrop", "size": 5}]}  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("lazy") / "d", per_class=(10, 4))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _batches(loader, epochs=(0,)):
    out = []
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)
        out += [tuple(t.clone() for t in batch) for batch in loader]
    return out


def _equal(a, b):
    return len(a) == len(b) and all(
        all(torch.equal(u, v) for u, v in zip(x, y, strict=True)) for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("augment", [False, True])
def test_lazy_batches_equal_the_in_memory_ones(root, augment):
    runs = {}
    for in_memory, workers in ((True, 0), (False, 0), (False, 2)):
        data = SplitCLDataset(
            "folder", "CIL", root=root, classes_per_task=2, batch_size=7, seed=5,
            in_memory=in_memory, num_workers=workers, augment=augment, crop_padding=1,
        )  # fmt: skip
        data.setup_task(2)
        assert isinstance(data.train_dataloader(), LazyLoader) is (not in_memory)
        runs[in_memory, workers] = (
            _batches(data.train_dataloader(), epochs=(0, 1, 3)),
            _batches(data.task_test_dataloader(1)) + _batches(data.val_dataloader()),
        )
    # with augmentation the in-memory path draws for several batches at once: the lazy path
    # equals it without augmentation, and equals itself whatever the workers
    reference = runs[True, 0] if not augment else runs[False, 0]
    for key, run in runs.items():
        if augment and key[0]:
            assert _equal(run[1], reference[1])  # evaluation is never augmented
            continue
        assert _equal(run[0], reference[0]) and _equal(run[1], reference[1]), key
    assert not _equal(reference[0][:3], reference[0][3:6])  # epochs 0 and 1 differ


def test_a_task_transform_runs_on_lazy_batches_too(root):
    runs = [
        _batches(d.train_dataloader())
        for d in (
            PermutedCLDataset("folder", "DIL", root=root, num_tasks=2, in_memory=m)
            for m in (True, False)
        )
        if d.setup_task(2) is None
    ]
    assert _equal(*runs)


def test_random_training_transforms_depend_on_seed_epoch_and_position_only(root):
    def run(workers, persistent=True):
        data = SplitCLDataset(
            "folder", "TIL", root=root, classes_per_task=2, batch_size=6, seed=1,
            transforms=FLIP, num_workers=workers, persistent_workers=persistent,
        )  # fmt: skip
        data.setup_task(1)
        assert data.input_shape == (1, 5, 5) and "transforms.train runs per image" in data.loading
        return _batches(data.train_dataloader(), epochs=(0, 1, 0)), data

    single, data = run(0)
    assert _equal(run(2)[0], single) and _equal(run(2, persistent=False)[0], single)
    per_epoch = len(single) // 3
    assert _equal(single[:per_epoch], single[2 * per_epoch :])  # epoch 0 again: the same
    assert not _equal(single[:per_epoch], single[per_epoch : 2 * per_epoch])
    test = _batches(data.task_test_dataloader(1))  # the test pipeline: a centre crop
    assert test[0][0].shape[1:] == (1, 5, 5)


def test_ranks_shard_the_lazy_epoch_as_the_in_memory_one(root, monkeypatch):
    for rank in (0, 1):
        monkeypatch.setattr(lazy, "_world", lambda rank=rank: (rank, 2))
        monkeypatch.setattr(loader_module, "_world", lambda rank=rank: (rank, 2))
        runs = []
        for in_memory in (True, False):
            data = SplitCLDataset(
                "folder", "CIL", root=root, classes_per_task=2, batch_size=4, seed=2,
                in_memory=in_memory,
            )  # fmt: skip
            data.setup_task(1)
            runs.append(_batches(data.train_dataloader()) + _batches(data.test_dataloader()[0]))
            assert len(data.train_dataloader()) == 3  # 18 training samples: 9 a rank
        assert _equal(*runs)


def test_statistics_are_computed_once_and_cached(root, tmp_path, monkeypatch):
    def build():
        data = SplitCLDataset("folder", "TIL", root=root, classes_per_task=2, in_memory=False)
        data.setup_task(1)
        return data.normalization

    in_memory = SplitCLDataset("folder", "TIL", root=root, classes_per_task=2, in_memory=True)
    in_memory.setup_task(1)
    first = build()
    assert first == in_memory.normalization  # whole training set, in memory or not
    files = list((tmp_path / "cache" / "clarena" / "stats").glob("*.json"))
    assert len(files) == 1
    cached = json.loads(files[0].read_text())
    assert cached["mean"] == pytest.approx(first[0]) and cached["std"] == pytest.approx(first[1])

    def no_pass(*args, **kwargs):
        raise AssertionError("statistics recomputed")

    monkeypatch.setattr(lazy, "channel_histogram", no_pass)
    assert build() == first  # read from the cache
    image = next((root / "train" / "cat").iterdir())
    os.utime(image, ns=(1, 1))  # a changed file: another key
    with pytest.raises(AssertionError, match="statistics recomputed"):
        build()
    files[0].write_text('{"mean": "__import__(\\"os\\")", "std": [1]}')  # data, never code
    assert read_cached_stats(files[0].stem, 1) is None


def test_in_memory_auto_chooses_by_the_budget_and_says_so(root, caplog):
    caplog.set_level("INFO", logger="clarena.cl_datasets.lazy")
    small = SplitCLDataset("folder", "TIL", root=root, classes_per_task=2, memory_budget_mb=1)
    assert small.input_shape == (1, 6, 6)
    assert "56 images of 1x6x6, 0.0 MiB decoded: in memory (within the budget of 1 MiB)" in (
        small.loading
    )
    tiny = SplitCLDataset("folder", "TIL", root=root, classes_per_task=2, memory_budget_mb=1e-4)
    assert tiny.input_shape == (1, 6, 6) and "read lazily (over the budget" in tiny.loading
    assert tiny.loading in caplog.text
    with pytest.raises(ValueError, match=r"in_memory=true cannot run cl_dataset.transforms.train"):
        SplitCLDataset("folder", "TIL", root=root, classes_per_task=2, in_memory=True,
                       transforms=FLIP).prepare_data()  # fmt: skip


def test_a_file_that_breaks_mid_run_is_named(tmp_path):
    root = write_image_folder(tmp_path / "d")
    bad = root / "train" / "emu" / "004.png"
    data = SplitCLDataset(
        "folder", "TIL", root=root, classes_per_task=2, in_memory=False, num_workers=2,
        normalize_mean=[0.5], normalize_std=[0.5], val_fraction=0.0,
    )  # fmt: skip
    data.setup_task(2)  # the headers are fine: the checks pass
    bad.write_bytes(bad.read_bytes()[:40])  # truncated after the checks, as a disk may fail
    with pytest.raises(ImageError) as caught:
        _batches(data.train_dataloader())
    assert str(caught.value).startswith(f"cannot read image '{bad}' (")
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(bad)  # replaced: the loader reads again
    assert len(_batches(data.train_dataloader())) == 1


@pytest.mark.parametrize(
    ("transforms", "message"),
    [
        ({"test": [{"name": "Normalize", "mean": [0.5], "std": [0.5]}]}, "normalize_mean"),
        ({"test": [{"name": "Lambda"}]}, "data, not code"),
        ({"test": [{"name": "Resise", "size": 4}]}, "not a torchvision.transforms.v2 transform"),
        ({"test": [{"name": "RandomHorizontalFlip"}]}, "test draws random numbers"),
        ({"train": [{"name": "RandomCrop", "size": 4}]}, "train images come out \\(1, 4, 4\\)"),
        ({"tset": []}, "unknown keys \\['tset'\\]"),
    ],
)
def test_bad_pipelines_are_refused(root, transforms, message):
    with pytest.raises(ValueError, match=message):
        SplitCLDataset(
            "folder", "TIL", root=root, classes_per_task=2, transforms=transforms
        ).prepare_data()

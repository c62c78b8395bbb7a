"""Bad input stops with one clear ValueError each, naming the cause and the fix."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
from cl_dataset_helpers import idx_bytes, write_idx_set

from clarena.cl_datasets import (
    DataIncrementalCLDataset,
    PermutedCLDataset,
    RotatedCLDataset,
    SplitCLDataset,
    load_source,
)


def test_classes_per_task_that_does_not_divide_the_classes():
    with pytest.raises(ValueError, match=r"classes_per_task=3 does not divide the 10 classes"):
        SplitCLDataset("digits", "TIL", classes_per_task=3)
    with pytest.raises(ValueError, match=r"num_tasks=4 does not divide the 10 classes"):
        SplitCLDataset("digits", "TIL", num_tasks=4)


def test_class_ids_that_do_not_exist():
    with pytest.raises(ValueError, match=r"class ids \[10, 12\] that do not exist.*0\.\.9"):
        SplitCLDataset("digits", "TIL", classes_per_task=2, class_order=[0, 12, 10, 1])
    with pytest.raises(ValueError, match="repeats class ids"):
        SplitCLDataset("digits", "TIL", classes_per_task=2, class_order=[0, 1, 1, 2])


def test_more_tasks_than_classes():
    with pytest.raises(ValueError, match="more tasks than classes"):
        SplitCLDataset("digits", "TIL", num_tasks=11)
    with pytest.raises(ValueError, match="more tasks than classes"):
        SplitCLDataset("digits", "TIL", num_tasks=4, classes_per_task=1, class_order=[0, 1, 2])


def test_data_root_that_does_not_exist(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(ValueError, match=r"data_root .*no/such' does not exist.*data_root=null"):
        SplitCLDataset("mnist", "TIL", classes_per_task=2, data_root=missing)
    with pytest.raises(ValueError, match="does not exist"):
        load_source("fashion_mnist", missing)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        PermutedCLDataset("mnist", "DIL", data_root=tmp_path / "file")


def test_truncated_idx_file(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    write_idx_set(folder, n_train=10, n_test=5, gz=False)
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"corrupt IDX file .*header promises 7856 bytes .* 7756"):
        load_source("mnist", tmp_path, download=False)


def test_truncated_gzip_and_bad_magic(tmp_path):
    folder = tmp_path / "FashionMNIST" / "raw"
    write_idx_set(folder, n_train=10, n_test=5, gz=True)
    path = folder / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match="corrupt gzip file"):
        load_source("fashion_mnist", tmp_path, download=False)
    path.write_bytes(gzip.compress(b"\x01\x02" + idx_bytes(np.zeros(5, np.uint8))[2:]))
    with pytest.raises(ValueError, match="not an IDX file"):
        load_source("fashion_mnist", tmp_path, download=False)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_lengths_are_exact_plain_and_gzipped(tmp_path, gz):
    """The gzip'd reader decompresses into a buffer of the header's size; bytes past it, or
    missing, are still counted exactly, as for a plain file."""
    from clarena.core.idx import read_idx

    good = idx_bytes(np.arange(6, dtype=np.uint8).reshape(3, 2))
    path = tmp_path / ("a.gz" if gz else "a")
    for raw, match in (
        (good + b"xyz", r"promises 18 bytes but the file has 21 \(trailing data\)"),
        (good[:-2], r"promises 18 bytes but the file has 16 \(truncated\)"),
        (good[:3], "not an IDX file"),
    ):
        path.write_bytes(gzip.compress(raw) if gz else raw)
        with pytest.raises(ValueError, match=match):
            read_idx(path)
    path.write_bytes(gzip.compress(good) if gz else good)
    array = read_idx(path)
    assert array.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert array.flags.writeable  # the sources wrap it in a tensor without copying


def test_mismatched_image_and_label_counts(tmp_path):
    folder = tmp_path / "MNIST" / "raw"
    write_idx_set(folder, n_train=10, n_test=5, gz=False)
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match=r"test files .* disagree"):
        load_source("mnist", tmp_path, download=False)


def test_other_settings():
    with pytest.raises(ValueError, match="unknown scenario 'til'"):
        SplitCLDataset("digits", "til", classes_per_task=2)
    with pytest.raises(ValueError, match="does not support scenario 'DataIL'"):
        SplitCLDataset("digits", "DataIL", classes_per_task=2)
    with pytest.raises(ValueError, match="does not support scenario 'CIL'"):
        DataIncrementalCLDataset("digits", "CIL", num_tasks=2)
    with pytest.raises(ValueError, match="unknown source 'svhn'"):
        SplitCLDataset("svhn", "TIL", classes_per_task=2)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        SplitCLDataset("digits", "TIL", classes_per_task=2, val_fraction=1.0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        SplitCLDataset("digits", "TIL", classes_per_task=2, batch_size=0)
    with pytest.raises(ValueError, match="must be positive and sum to 1"):
        DataIncrementalCLDataset("digits", "DataIL", chunk_fractions=[0.5, 0.6])
    with pytest.raises(ValueError, match="num_tasks=3 but 2 angles"):
        RotatedCLDataset("digits", "DIL", num_tasks=3, angles=[0, 90])
    with pytest.raises(ValueError, match=r"task_id must be an integer in 1\.\.5, got 0"):
        SplitCLDataset("digits", "TIL", classes_per_task=2).setup_task(0)
    with pytest.raises(RuntimeError, match="call setup_task"):
        SplitCLDataset("digits", "TIL", classes_per_task=2).train_dataloader()


def test_truncated_cifar_batch(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    batch = {"data": np.zeros((2, 3072), np.uint8), "fine_labels": [1, 2]}
    (folder / "train").write_bytes(pickle.dumps(batch)[:-40])
    (folder / "test").write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match=r"corrupt CIFAR batch file .*train"):
        load_source("cifar100", tmp_path, download=False)
    (folder / "train").write_bytes(
        pickle.dumps({"data": np.zeros((2, 100), np.uint8), "fine_labels": [1, 2]})
    )
    with pytest.raises(ValueError, match=r"do not match the \(N, 3072\) layout"):
        load_source("cifar100", tmp_path, download=False)

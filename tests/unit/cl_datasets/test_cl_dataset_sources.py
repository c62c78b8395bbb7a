"""Sources read from tiny files in the exact on-disk formats torchvision uses; no network."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from cl_dataset_helpers import write_idx_set

from clarena.cl_datasets import (
    DatasetNotFoundError,
    SplitCLDataset,
    default_data_root,
    load_source,
)
from clarena.cl_datasets.formats import read_cifar_batch, read_idx


@pytest.mark.parametrize("gz", [False, True], ids=["idx", "gzipped-idx"])
@pytest.mark.parametrize(
    ("source", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_idx_sources_load_torchvision_layout(tmp_path, gz, source, folder):
    arrays = write_idx_set(tmp_path / folder / "raw", n_train=30, n_test=20, gz=gz)
    data = load_source(source, tmp_path, download=False)
    assert data.train_x.shape == (30, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (20, 1, 28, 28) and data.test_y.dtype == torch.int64
    assert np.array_equal(data.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert data.train_y.tolist() == [i % 10 for i in range(30)]
    assert data.test_y.tolist() == [i % 10 for i in range(20)]
    assert int(data.train_x[3, 0, 2, 5]) == 10 * 3 + 2 + 5


def test_mnist_split_tasks_from_files(tmp_path):
    write_idx_set(tmp_path / "MNIST" / "raw", n_train=40, n_test=20, gz=True)
    data = SplitCLDataset("mnist", "CIL", data_root=tmp_path, classes_per_task=5, val_fraction=0)
    data.setup_task(2)
    rows, _ = data.task_samples(2, "train")
    assert rows.tolist() == [i for i in range(40) if i % 10 >= 5]
    x, y, task_ids = next(iter(data.test_dataloader()[1]))
    assert x.shape == (10, 1, 28, 28) and y.tolist() == [5, 6, 7, 8, 9] * 2
    assert task_ids.tolist() == [2] * 10


def test_idx_reader_handles_other_types(tmp_path):
    values = np.array([[1.5, -2.0], [3.25, 0.0]], dtype=">f4")
    header = bytes([0, 0, 0x0D, 2]) + struct.pack(">2I", 2, 2)
    (tmp_path / "f.idx").write_bytes(header + values.tobytes())
    assert read_idx(tmp_path / "f.idx").tolist() == [[1.5, -2.0], [3.25, 0.0]]


def _cifar_rows(n: int, offset: int) -> np.ndarray:
    """(n, 3072) uint8 rows: sample j's channel k holds (offset + j + 7 * k) % 256 everywhere."""
    j = np.arange(n)[:, None, None] + offset
    k = np.arange(3)[None, :, None]
    return np.broadcast_to((j + 7 * k) % 256, (n, 3, 1024)).reshape(n, 3072).astype(np.uint8)


def test_cifar10_pickled_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for b in range(1, 6):
        rows = _cifar_rows(4, offset=10 * b)
        entry = {"batch_label": "training batch", "data": rows, "labels": [b, b + 1, b, b + 1]}
        if b == 2:  # keys as Python 2 wrote them, read back as bytes
            entry = {k.encode(): v for k, v in entry.items()}
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps(entry, protocol=2))
    test = {"data": _cifar_rows(3, offset=200), "labels": [9, 0, 9]}
    (folder / "test_batch").write_bytes(pickle.dumps(test))
    data = load_source("cifar10", tmp_path, download=False)
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (3, 3, 32, 32)
    assert data.train_y.tolist() == [b + d for b in range(1, 6) for d in (0, 1, 0, 1)]
    assert data.test_y.tolist() == [9, 0, 9]
    # batch 3's second sample: offset 30 + 1; channel 2 adds 14.
    assert data.train_x[9, 2].unique().tolist() == [45]
    assert data.num_classes == 10


def test_cifar100_pickled_batches(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train = {
        "data": _cifar_rows(6, 0),
        "fine_labels": [99, 0, 42, 7, 7, 1],
        "coarse_labels": [0] * 6,
    }
    (folder / "train").write_bytes(pickle.dumps(train, protocol=2))
    (folder / "test").write_bytes(pickle.dumps({"data": _cifar_rows(2, 50), "fine_labels": [3, 4]}))
    data = load_source("cifar100", tmp_path, download=False)
    assert data.train_y.tolist() == [99, 0, 42, 7, 7, 1] and data.num_classes == 100
    assert data.test_x[1, 0].unique().tolist() == [51]


def test_cifar_reader_refuses_code_in_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    (tmp_path / "batch").write_bytes(pickle.dumps({"data": Evil(), "labels": []}))
    with pytest.raises(ValueError, match="refusing to load"):
        read_cifar_batch(tmp_path / "batch", "labels")


def test_missing_files_name_the_files_the_folder_and_the_offline_default(tmp_path):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError) as info:
        load_source("mnist", tmp_path, download=False)
    message = str(info.value)
    assert "train-labels-idx1-ubyte" in message and "t10k-images-idx3-ubyte" in message
    assert "train-images-idx3-ubyte," not in message  # present files are not listed as missing
    assert str(tmp_path / "MNIST" / "raw") in message and "split_digits" in message
    with pytest.raises(DatasetNotFoundError, match=r"cifar-10-batches-py.*split_digits"):
        load_source("cifar10", tmp_path, download=False)


def test_default_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CLARENA_DATA_ROOT", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_root() == tmp_path / "xdg" / "clarena" / "data"
    monkeypatch.setenv("CLARENA_DATA_ROOT", str(tmp_path / "mine"))
    assert default_data_root() == tmp_path / "mine"
    (tmp_path / "mine" / "FashionMNIST" / "raw").mkdir(parents=True)
    monkeypatch.setattr(  # hide Debian's copy so the default folder is the only place
        "clarena.cl_datasets.sources.DEBIAN_FASHION_MNIST", tmp_path / "nowhere"
    )
    write_idx_set(tmp_path / "mine" / "FashionMNIST" / "raw", 10, 10, gz=True)
    assert load_source("fashion_mnist", None, download=False).train_x.shape[0] == 10


def test_digits_source_is_embedded():
    data = load_source("digits", download=False)
    # A quarter (rounded down) of every class is test data: 44+45+44+45+45+45+45+44+43+45 = 445.
    assert data.train_x.shape == (1352, 1, 8, 8) and data.test_x.shape == (445, 1, 8, 8)
    assert int(data.train_x.max()) == 255 and int(data.train_x.min()) == 0
    assert np.bincount(data.test_y.numpy()).tolist() == [44, 45, 44, 45, 45, 45, 45, 44, 43, 45]


def test_digits_read_from_the_bundled_file_equal_scikit_learns_and_import_nothing_of_it():
    from sklearn.datasets import load_digits

    from clarena.cl_datasets.sources import digits_arrays, digits_file

    assert digits_file() is not None and digits_file().name == "digits.csv.gz"
    images, classes = digits_arrays()
    bunch = load_digits()
    assert images.dtype == bunch.images.dtype and np.array_equal(images, bunch.images)
    assert np.array_equal(classes, bunch.target)
    code = (
        "import sys; from clarena.cl_datasets.sources import digits_arrays; digits_arrays(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_digits_without_the_bundled_file_come_from_scikit_learn(monkeypatch):
    from sklearn.datasets import load_digits

    import clarena.cl_datasets.sources as sources

    monkeypatch.setattr(sources, "digits_file", lambda: None)
    images, classes = sources.digits_arrays()
    assert np.array_equal(images, load_digits().images) and classes.tolist()[:3] == [0, 1, 2]


def test_a_digits_file_of_another_shape_is_one_line(tmp_path, monkeypatch):
    import clarena.cl_datasets.sources as sources

    bad = tmp_path / "digits.csv.gz"
    bad.write_bytes(gzip.compress(b"1,2,3\n4,5,6\n"))
    monkeypatch.setattr(sources, "digits_file", lambda: bad)
    with pytest.raises(ValueError, match="3 columns, not 64 pixels and a class"):
        sources.digits_arrays()

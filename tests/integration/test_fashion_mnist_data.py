"""Real Fashion-MNIST from Debian's `dataset-fashion-mnist` package (installed by `.ci/run`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clarena.cl_datasets import DataIncrementalCLDataset, SplitCLDataset, load_source
from clarena.cl_datasets.sources import DEBIAN_FASHION_MNIST
from clarena.cl_datasets.transforms import channel_stats

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
        reason="needs Debian's package: apt-get install dataset-fashion-mnist",
    ),
]


def test_fashion_mnist_counts_and_split_into_five_tasks(tmp_path):
    # An empty data_root: the files are found in Debian's folder.
    data = SplitCLDataset(
        "fashion_mnist", "CIL", data_root=tmp_path, num_tasks=5, val_fraction=0.0, download=False
    )
    source = data.data
    assert source.train_x.shape == (60000, 1, 28, 28) and source.test_x.shape == (10000, 1, 28, 28)
    assert np.bincount(source.train_y.numpy()).tolist() == [6000] * 10
    assert np.bincount(source.test_y.numpy()).tolist() == [1000] * 10
    # The first labels of the published files: ankle boot, T-shirt, T-shirt, dress, ...
    assert source.train_y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert source.test_y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert [data.classes_of_task(t) for t in range(1, 6)] == [
        (0, 1),
        (2, 3),
        (4, 5),
        (6, 7),
        (8, 9),
    ]
    data.setup_task(5)
    for t, loader in enumerate(data.test_dataloader(), start=1):
        assert loader.num_samples == 2000
        labels = torch.cat([y for _, y, _ in loader])
        assert np.bincount(labels.numpy()).tolist() == [0] * (2 * t - 2) + [1000, 1000]
    for t in range(1, 6):
        rows, classes = data.task_samples(t, "train")
        assert rows.numel() == 12000
        assert np.bincount(classes.numpy(), minlength=10)[2 * t - 2 : 2 * t].tolist() == [6000] * 2
    x, y, task_ids = next(iter(data.train_dataloader()))
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32
    assert set(y.tolist()) <= {8, 9} and set(task_ids.tolist()) == {5}


def test_fashion_mnist_data_incremental_chunks(tmp_path):
    data = DataIncrementalCLDataset(
        "fashion_mnist", "DataIL", num_tasks=5, val_fraction=0.1, data_root=tmp_path, download=False
    )
    # 5,400 training samples per class after holding out 600: 1,080 per class in every chunk.
    chunks = [data.task_samples(t, "train") for t in range(1, 6)]
    assert [np.bincount(c.numpy()).tolist() for _, c in chunks] == [[1080] * 10] * 5
    rows = torch.cat([r for r, _ in chunks])
    assert rows.unique().numel() == 54000
    data.setup_task(3)
    assert data.val_dataloader().num_samples == 6000
    assert [loader.num_samples for loader in data.test_dataloader()] == [10000] * 3


def test_normalisation_statistics_of_the_training_set(tmp_path):
    source = load_source("fashion_mnist", tmp_path, download=False)
    mean, std = channel_stats(source.train_x)
    # The widely quoted Fashion-MNIST statistics, 0.2860 and 0.3530.
    assert mean == pytest.approx([0.2860], abs=5e-5) and std == pytest.approx([0.3530], abs=5e-5)

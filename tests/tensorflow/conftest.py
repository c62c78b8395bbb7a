"""Shared set-up of the TensorFlow tests: the `tensorflow` marker, quiet logs, real Fashion-MNIST.

These tests run in their own pytest process (`python -m pytest tests/tensorflow`): TensorFlow
imported before torch in one process aborts the interpreter.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from clarena.core.idx import read_idx  # numpy only: no torch in the TensorFlow process

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.tensorflow)


@pytest.fixture(scope="session")
def fashion_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): images (N, 28, 28, 1) in [0, 1], int64 labels."""
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("needs Debian's dataset-fashion-mnist package (/usr/share/datasets)")

    def images(name: str) -> np.ndarray:
        return (read_idx(FASHION_MNIST / name)[..., None] / np.float32(255.0)).astype(np.float32)

    def labels(name: str) -> np.ndarray:
        return read_idx(FASHION_MNIST / name).astype(np.int64)

    return (
        images("train-images-idx3-ubyte.gz"),
        labels("train-labels-idx1-ubyte.gz"),
        images("t10k-images-idx3-ubyte.gz"),
        labels("t10k-labels-idx1-ubyte.gz"),
    )

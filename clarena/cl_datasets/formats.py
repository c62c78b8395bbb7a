"""Readers for the on-disk formats of the image sources, with clear errors for damaged files.

- **IDX** (MNIST, Fashion-MNIST): `read_idx`, defined once in `clarena.core.idx` (torch-free, so
  the TensorFlow side reads the same files with the same checks) and re-exported here.
- **CIFAR's pickled batches** (CIFAR-10, CIFAR-100): a dict with `data`, an `(N, 3072)` uint8
  array in channel-major order, and `labels` or `fine_labels`. They are read with a restricted
  unpickler that only rebuilds numpy arrays, so a data file can never run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from clarena.core.idx import read_idx

__all__ = ["read_cifar_batch", "read_idx"]


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else."""

    _allowed = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: str | Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one of CIFAR's pickled batch files.

    Args:
        path: the batch file (e.g. `cifar-10-batches-py/data_batch_1` or `cifar-100-python/train`).
        label_key: `"labels"` (CIFAR-10) or `"fine_labels"` (CIFAR-100).

    Returns:
        `(images, labels)`: uint8 `(N, 3, 32, 32)` and int64 `(N,)`.

    Raises:
        ValueError: if the file cannot be unpickled or lacks the expected entries.
    """
    path = Path(path)
    fix = "delete it and download it again"
    try:
        with path.open("rb") as f:
            batch = _ArrayOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise ValueError(f"corrupt CIFAR batch file {str(path)!r} ({err}); {fix}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"corrupt CIFAR batch file {str(path)!r}: not a dict; {fix}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise ValueError(
            f"corrupt CIFAR batch file {str(path)!r}: missing 'data' or {label_key!r}; {fix}"
        )
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise ValueError(
            f"corrupt CIFAR batch file {str(path)!r}: data {data.shape} and {labels.shape[0]} "
            f"labels do not match the (N, 3072) layout; {fix}"
        )
    return data.reshape(-1, 3, 32, 32), labels

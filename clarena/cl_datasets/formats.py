"""Readers for the on-disk formats of the image sources, with clear errors for damaged files.

- **IDX** (MNIST, Fashion-MNIST): a big-endian header — two zero bytes, a type code, the number
  of dimensions $d$, then $d$ 32-bit sizes — followed by $\\prod_i n_i$ values. Plain or gzip'd.
- **CIFAR's pickled batches** (CIFAR-10, CIFAR-100): a dict with `data`, an `(N, 3072)` uint8
  array in channel-major order, and `labels` or `fine_labels`. They are read with a restricted
  unpickler that only rebuilds numpy arrays, so a data file can never run code.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

_IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (EOFError, OSError, gzip.BadGzipFile) as err:
            raise ValueError(
                f"corrupt gzip file {str(path)!r} ({err}): delete it and download it again"
            ) from None
    return path.read_bytes()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip'd, by its `.gz` suffix) into a numpy array.

    Args:
        path: the file.

    Returns:
        An array of the file's shape, in native byte order.

    Raises:
        ValueError: if the header is not IDX or the file is shorter or longer than its header says.
    """
    path = Path(path)
    raw = _read_bytes(path)
    fix = "delete it and download it again"
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{str(path)!r} is not an IDX file (bad magic number): {fix}")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"corrupt IDX file {str(path)!r}: truncated header; {fix}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"corrupt IDX file {str(path)!r}: the header promises {expected} bytes but the file "
            f"has {len(raw)} ({'truncated' if len(raw) < expected else 'trailing data'}); {fix}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=False)


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

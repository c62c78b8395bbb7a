"""The IDX file format of MNIST and Fashion-MNIST, read once for every wing (numpy only).

An IDX file is a big-endian header — two zero bytes, a type code, the number of dimensions $d$,
then $d$ 32-bit sizes $n_1, \\dots, n_d$ — followed by $\\prod_i n_i$ values of the type. The
files are read plain or gzip'd (by the `.gz` suffix), and a damaged file gives a one-line error
naming it and the fix. The PyTorch datasets (`clarena.cl_datasets`), the TensorFlow tests and the
benchmarks all call `read_idx`.
"""

from __future__ import annotations

import gzip
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


def _fill(f: Any, buffer: bytearray, start: int) -> int:
    """Read from `f` into `buffer[start:]` until it is full or the file ends; the bytes held."""
    view, filled = memoryview(buffer), start
    while filled < len(buffer):
        n = f.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


def _read_buffer(path: Path) -> bytearray:
    """The file's (decompressed) bytes in one writable buffer.

    A gzip'd file is decompressed straight into a buffer of the size its IDX header gives, so
    the images are written to memory once: joining decompressed chunks and copying the result
    into a writable array touched two more fresh copies (0.35 s of page faults for
    Fashion-MNIST's 47 MB of training images on a 2-core VM).
    """
    if path.suffix != ".gz":
        buffer = bytearray(path.stat().st_size)
        with path.open("rb") as f:
            del buffer[_fill(f, buffer, 0) :]
        return buffer
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(4)
            ndim = head[3] if len(head) == 4 and head[2] in _IDX_TYPES else 0
            head += f.read(4 * ndim)
            if ndim == 0 or len(head) < 4 + 4 * ndim:  # not IDX: read_idx names the fault
                return bytearray(head + f.read())
            shape = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
            size = int(np.prod(shape, dtype=np.int64)) * _IDX_TYPES[head[2]].itemsize
            buffer = bytearray(len(head) + size)
            buffer[: len(head)] = head
            filled = _fill(f, buffer, len(head))
            trailing = f.read()  # anything after the values makes the length check fail
    except (EOFError, OSError, gzip.BadGzipFile) as err:
        raise ValueError(
            f"corrupt gzip file {str(path)!r} ({err}): delete it and download it again"
        ) from None
    del buffer[filled:]
    return buffer + trailing if trailing else buffer


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip'd, by its `.gz` suffix) into a numpy array.

    Args:
        path: the file.

    Returns:
        A writable array of the file's shape, in native byte order, over its own buffer.

    Raises:
        ValueError: if the header is not IDX or the file is shorter or longer than its header says.
    """
    path = Path(path)
    raw = _read_buffer(path)
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

"""Sources from arrays: an `.npz` file, numpy arrays or tensors in Python.

An `.npz` holds `train_x`, `train_y`, `test_x`, `test_y` and optionally `class_names` (strings,
one per class); images are uint8 `(N, H, W)`, `(N, H, W, C)` or `(N, C, H, W)` with `C` in 1 or 3.
Without `class_names` the classes are `0..K-1` with $K = 1 + \\max y$. The file is read with
`allow_pickle=False`: it holds data, never objects.

Example:
    >>> import numpy as np
    >>> from clarena.cl_datasets import SplitCLDataset, array_source
    >>> x = np.zeros((40, 8, 8), dtype=np.uint8); y = np.arange(40) % 4
    >>> data = SplitCLDataset(array_source(x, y, x[:8], y[:8]), "TIL", classes_per_task=2)
    >>> data.num_tasks, data.input_shape
    (2, (1, 8, 8))
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clarena.cl_datasets.indexed import check_labels
from clarena.cl_datasets.sources import SourceData

NPZ_KEYS = ("train_x", "train_y", "test_x", "test_y")
"""The arrays an `.npz` source must hold."""


def _images(x: Any, where: str) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.dtype != torch.uint8:
        if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
            raise ValueError(f"{where} is {t.dtype}: give uint8 pixels in 0..255, not floats")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) > 255):
            raise ValueError(f"{where} has values outside 0..255: give uint8 pixels")
        t = t.to(torch.uint8)
    if t.dim() == 3:
        t = t[:, None]
    elif t.dim() == 4 and t.shape[1] not in (1, 3) and t.shape[3] in (1, 3):
        t = t.permute(0, 3, 1, 2)
    if t.dim() != 4 or t.shape[1] not in (1, 3):
        raise ValueError(
            f"{where} has shape {tuple(t.shape)}: give (N, H, W), (N, H, W, C) or (N, C, H, W) "
            "images with C = 1 or 3"
        )
    return t.contiguous()


def _labels(y: Any, n: int, where: str) -> torch.Tensor:
    t = y.detach().cpu() if isinstance(y, torch.Tensor) else torch.from_numpy(np.asarray(y))
    if t.dim() != 1 or t.shape[0] != n or t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(
            f"{where} must be {n} integer classes, one an image; got {tuple(t.shape)} {t.dtype}"
        )
    return t.to(torch.int64)


def array_source(
    train_x: Any,
    train_y: Any,
    test_x: Any,
    test_y: Any,
    class_names: Sequence[str] | None = None,
    name: str = "arrays",
) -> SourceData:
    """A source held in memory from numpy arrays or tensors.

    Args:
        train_x: uint8 training images `(N, H, W)`, `(N, H, W, C)` or `(N, C, H, W)`.
        train_y: integer classes `(N,)` in `0..K-1`.
        test_x: test images, like `train_x`.
        test_y: test classes, like `train_y`.
        class_names: one name per class ($K$ = their number; default $1 + \\max y$).
        name: the source's name in logs and reports.

    Raises:
        ValueError: for a wrong dtype, layout or length, or labels outside `0..K-1`.
    """
    images = [_images(train_x, f"{name}: train_x"), _images(test_x, f"{name}: test_x")]
    labels = [
        _labels(train_y, images[0].shape[0], f"{name}: train_y"),
        _labels(test_y, images[1].shape[0], f"{name}: test_y"),
    ]
    if class_names is not None:
        num_classes = len(class_names)
    else:
        num_classes = 1 + max((int(y.max()) for y in labels if y.numel()), default=-1)
    fix = (
        "classes must be 0..K-1 with K the number of class_names"
        if class_names is not None
        else "classes must be 0..K-1"
    )
    for split, y in zip(("train_y", "test_y"), labels, strict=True):
        check_labels(f"{name}: {split}", y.numpy(), num_classes, fix)
    names = tuple(str(c) for c in class_names) if class_names is not None else None
    return SourceData(
        name, images[0], labels[0], images[1], labels[1], num_classes, class_names=names
    )


def load_npz(path: str | Path) -> SourceData:
    """Read an `.npz` source (see the module's docstring).

    Raises:
        ValueError: a missing or unreadable file, a missing array, or bad arrays, naming the file.
    """
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise ValueError(f"npz file {str(path)!r} not found: set cl_dataset.root to the file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in NPZ_KEYS if k not in npz.files]
            if missing:
                raise ValueError(
                    f"{str(path)!r} lacks {', '.join(missing)}: save it with "
                    "np.savez(path, train_x=..., train_y=..., test_x=..., test_y=...)"
                )
            arrays = {k: npz[k] for k in NPZ_KEYS}
            names = npz["class_names"].tolist() if "class_names" in npz.files else None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(
            f"cannot read {str(path)!r} ({err}): save it again with np.savez"
        ) from None
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(
            f"{str(path)!r}: {err}; save plain arrays (no objects) with np.savez"
        ) from None
    return array_source(
        arrays["train_x"],
        arrays["train_y"],
        arrays["test_x"],
        arrays["test_y"],
        class_names=names,
        name=str(path),
    )

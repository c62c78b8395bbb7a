"""The image sources: scikit-learn's 8×8 digits, MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100.

Each source loads into a `SourceData`: uint8 image tensors `(N, C, H, W)` and int64 class tensors
for its training and test sets, held in memory. File sources use torchvision's folder layout under
`data_root` (`MNIST/raw/`, `FashionMNIST/raw/`, `cifar-10-batches-py/`, `cifar-100-python/`) and
torchvision's downloaders where the network allows; Fashion-MNIST is also found in Debian's
`dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist/`). A file source's
`FileLayout` says where its files are looked for, which they are and how to place them by hand;
`clarena data` lists it and `clarena data fetch <source>` downloads into it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clarena.cl_datasets.formats import read_cifar_batch, read_idx
from clarena.cl_datasets.paths import DEBIAN_FASHION_MNIST as DEBIAN_FASHION_MNIST
from clarena.cl_datasets.paths import IDX_FILES as _IDX_FILES
from clarena.cl_datasets.paths import (
    LAYOUTS,
    FileLayout,
    fetch_command,
    resolve_data_root,
)
from clarena.cl_datasets.paths import find_file as _find


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A source's files are missing and could not be downloaded."""


@dataclass(frozen=True)
class SourceData:
    """A source held in memory.

    Attributes:
        name: the source's name.
        train_x: uint8 training images `(N, C, H, W)`.
        train_y: int64 training classes `(N,)`, in `0..num_classes-1`.
        test_x: uint8 test images `(M, C, H, W)`.
        test_y: int64 test classes `(M,)`.
        num_classes: the number of classes.
        class_names: one name per class, for reports (`None`: the source has none of its own).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{self.name}: {len(self.class_names)} class names for {self.num_classes} "
                "classes: give one name a class"
            )
        for split, x, y in (
            ("train", self.train_x, self.train_y),
            ("test", self.test_x, self.test_y),
        ):
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"{self.name}: {split} images must be uint8 (N, C, H, W)")
            if y.dtype != torch.int64 or y.shape != (x.shape[0],):
                raise ValueError(f"{self.name}: {split} classes must be int64 (N,) like the images")
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ValueError(f"{self.name}: {split} classes outside 0..{self.num_classes - 1}")
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise ValueError(f"{self.name}: train and test images differ in shape")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """`(C, H, W)` of one image."""
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))


@dataclass(frozen=True)
class SourceInfo:
    """What is known about a source without reading its files."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    load: Callable[[Path | None, bool], SourceData]
    """`load(data_root, download)`; `data_root` is already resolved (`None` for embedded data)."""
    needs_files: bool = True
    layout: FileLayout | None = None
    """Where its files are (None for embedded data and the user's own sources)."""


def digits_file() -> Path | None:
    """scikit-learn's bundled `datasets/data/digits.csv.gz`, found without importing scikit-learn
    (`import sklearn.datasets` costs about 0.25 s of a 10 s run); `None` if it is not there."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits as `load_digits()` gives them: images `(1797, 8, 8)` float64 in 0..16 and the
    classes `(1797,)`; read from the bundled file (rows of 64 pixels and the class), or through
    scikit-learn where that file is not found (another layout of the package)."""
    path = digits_file()
    if path is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    table = np.loadtxt(path, delimiter=",", ndmin=2)
    if table.shape[1] != 65:
        raise ValueError(
            f"{path}: {table.shape[1]} columns, not 64 pixels and a class; "
            "reinstall scikit-learn (pip install --force-reinstall scikit-learn)"
        )
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def _digits(data_root: Path | None, download: bool) -> SourceData:
    """scikit-learn's digits: 1,797 8×8 images, 0..16 rescaled to 0..255; 1,352 / 445 split."""
    pixels, target = digits_arrays()
    images = np.rint(pixels * (255.0 / 16.0)).astype(np.uint8)[:, None]
    classes = target.astype(np.int64)
    rng = np.random.default_rng(0)  # the split is a property of the source, not of the experiment
    test = np.zeros(len(classes), dtype=bool)
    for c in range(10):
        members = rng.permutation(np.flatnonzero(classes == c))
        test[members[: len(members) // 4]] = True
    return SourceData(
        "digits",
        torch.from_numpy(images[~test]),
        torch.from_numpy(classes[~test]),
        torch.from_numpy(images[test]),
        torch.from_numpy(classes[test]),
        10,
    )


def _missing_error(
    name: str, layout: FileLayout, data_root: Path, download: bool
) -> DatasetNotFoundError:
    why = "could not be downloaded" if download else "download=false"
    return DatasetNotFoundError(
        f"{name} files not found ({why}): run `{fetch_command(name, data_root)}`, or put "
        f"{', '.join(layout.missing(data_root))} ({layout.kind}) into "
        f"{str(data_root / layout.folder)!r}, or use the cl_dataset split_digits, which needs "
        "no files"
    )


@functools.lru_cache(maxsize=4)
def _load_idx_folder(name: str, folder: str, stamp: tuple[float, ...]) -> SourceData:
    paths = [_find(Path(folder), stem) for stem in _IDX_FILES]
    arrays = [read_idx(p) for p in paths if p is not None]
    train_x, train_y, test_x, test_y = (torch.from_numpy(a) for a in arrays)  # writable, no copy
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.dim() != 3 or y.dim() != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name} {split} files in {folder!r} disagree: images {tuple(x.shape)}, "
                f"labels {tuple(y.shape)}; delete them and download them again"
            )
    return SourceData(
        name, train_x[:, None], train_y.long(), test_x[:, None], test_y.long(), num_classes=10
    )


def _located(name: str, layout: FileLayout, data_root: Path | None, download: bool) -> Path:
    """The folder holding the source's files, downloaded first where missing and allowed."""
    assert data_root is not None
    folder = layout.found(data_root)
    if folder is None and download and layout.download(data_root) is None:
        folder = layout.found(data_root)
    if folder is None:
        raise _missing_error(name, layout, data_root, download)
    return folder


def _idx_source(name: str, layout: FileLayout) -> Callable:
    def load(data_root: Path | None, download: bool) -> SourceData:
        folder = _located(name, layout, data_root, download)
        stamp = tuple(p.stat().st_mtime for p in layout.paths_in(folder) if p is not None)
        return _load_idx_folder(name, str(folder), stamp)

    return load


def _cifar_source(name: str, layout: FileLayout, label_key: str):
    def load(data_root: Path | None, download: bool) -> SourceData:
        home = _located(name, layout, data_root, download)
        *train, test_file = layout.files
        parts = [read_cifar_batch(home / f, label_key) for f in train]
        test_x, test_y = read_cifar_batch(home / test_file, label_key)
        return SourceData(
            name,
            torch.from_numpy(np.concatenate([p[0] for p in parts])),
            torch.from_numpy(np.concatenate([p[1] for p in parts])),
            torch.from_numpy(test_x),
            torch.from_numpy(test_y),
            num_classes=10 if name == "cifar10" else 100,
        )

    return load


SOURCES: dict[str, SourceInfo] = {
    "digits": SourceInfo("digits", 10, (1, 8, 8), _digits, needs_files=False),
    "mnist": SourceInfo(
        "mnist", 10, (1, 28, 28), _idx_source("mnist", LAYOUTS["mnist"]), layout=LAYOUTS["mnist"]
    ),
    "fashion_mnist": SourceInfo(
        "fashion_mnist",
        10,
        (1, 28, 28),
        _idx_source("fashion_mnist", LAYOUTS["fashion_mnist"]),
        layout=LAYOUTS["fashion_mnist"],
    ),
    "cifar10": SourceInfo(
        "cifar10",
        10,
        (3, 32, 32),
        _cifar_source("cifar10", LAYOUTS["cifar10"], "labels"),
        layout=LAYOUTS["cifar10"],
    ),
    "cifar100": SourceInfo(
        "cifar100",
        100,
        (3, 32, 32),
        _cifar_source("cifar100", LAYOUTS["cifar100"], "fine_labels"),
        layout=LAYOUTS["cifar100"],
    ),
}
"""The registry of sources by name."""


def list_sources() -> list[str]:
    """The names of the registered sources."""
    return sorted(SOURCES)


def source_info(name: str) -> SourceInfo:
    """The registry entry of a source, with a clear error for an unknown name."""
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}: choose one of {', '.join(list_sources())}")
    return SOURCES[name]


def load_source(
    name: str, data_root: str | Path | None = None, download: bool = True
) -> SourceData:
    """Load a source into memory.

    Args:
        name: one of `list_sources()`.
        data_root: the data folder (`None`: `default_data_root()`); must exist if given.
        download: try torchvision's downloader when files are missing.

    Returns:
        The source's training and test sets as uint8 / int64 tensors.

    Raises:
        ValueError: for an unknown name, a missing `data_root` or a corrupt file.
        DatasetNotFoundError: when the files are missing and cannot be downloaded.
    """
    info = source_info(name)
    root = resolve_data_root(data_root)
    return info.load(root if info.needs_files else None, download)

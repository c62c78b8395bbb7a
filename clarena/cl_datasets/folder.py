"""`ImageFolderSource`: a folder of images in torchvision's `ImageFolder` layout.

    ROOT/train/<class>/<any path>.<png|jpg|...>     (or ROOT/<class>/... with no train/)
    ROOT/test/<class>/...                           (optional)

Classes are the folder names, sorted (class $i$ is the $i$-th name, as in `ImageFolder`), and
name the classes in reports; images are every file Pillow can open below a class folder, in sorted
order, hidden files skipped. Without `test/`, `test_fraction` of every class is held out (seeded,
stratified, the same in every run). The layout is checked when the source is opened (an empty
class folder, a class of `train/` missing from `test/` or the other way round), and every image's
header when a dataset prepares it (`header`, read by worker processes): a file Pillow cannot
identify stops the run before training, naming the file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from clarena.cl_datasets.images import ImageHeader, decode_file, image_suffixes, probe
from clarena.cl_datasets.indexed import IndexedSource, holdout


def _images_below(folder: Path) -> list[str]:
    """Image files below `folder` (recursively, sorted, hidden files and folders skipped)."""
    suffixes = image_suffixes()
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            os.path.join(parent, f)
            for f in sorted(files)
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in suffixes
        ]
    return found


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and e.name[0] != ".")


def _scan_split(split_dir: Path, classes: list[str]) -> tuple[list[str], np.ndarray]:
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = _images_below(split_dir / name)
        if not found:
            raise ValueError(
                f"class folder {str(split_dir / name)!r} holds no image (.png, .jpg, ... any "
                "format Pillow reads): add images or delete the folder"
            )
        paths += found
        labels += [label] * len(found)
    return paths, np.asarray(labels, dtype=np.int64)


class ImageFolderSource(IndexedSource):
    """Images in class folders, read one file at a time."""

    def __init__(self, root: str | Path, test_fraction: float = 0.2, name: str | None = None):
        """List the classes and files (no image is opened).

        Args:
            root: the folder with `train/` (and `test/`), or directly the class folders.
            test_fraction: the share of every class held out as the test set without `test/`.
            name: the source's name (default: the folder's name).

        Raises:
            ValueError: a missing folder, no class folder, an empty class folder, or classes that
                differ between `train/` and `test/`, each naming the folder and the fix.
        """
        self.root = Path(root).expanduser().absolute()
        if not self.root.is_dir():
            raise ValueError(
                f"image folder {str(self.root)!r} does not exist: set cl_dataset.root to a folder "
                "with train/<class>/ image folders"
            )
        self.name = name or self.root.name
        train_dir = self.root / "train" if (self.root / "train").is_dir() else self.root
        test_dir = self.root / "test" if train_dir != self.root else None
        classes = _class_folders(train_dir)
        if not classes:
            raise ValueError(
                f"{str(train_dir)!r} has no class folder: put the images of each class into "
                f"{self.root / 'train'!s}/<class name>/"
            )
        train_paths, train_y = _scan_split(train_dir, classes)
        if test_dir is not None and test_dir.is_dir():
            test_classes = _class_folders(test_dir)
            for missing, has, lacks in (
                (sorted(set(classes) - set(test_classes)), train_dir, test_dir),
                (sorted(set(test_classes) - set(classes)), test_dir, train_dir),
            ):
                if missing:
                    raise ValueError(
                        f"class {missing[0]!r} is in {str(has)!r} but not in {str(lacks)!r}: "
                        f"give both the same class folders, or remove {str(test_dir)!r} to hold "
                        "out test_fraction of train/ instead"
                    )
            test_paths, test_y = _scan_split(test_dir, classes)
        else:
            train_rows, test_rows = holdout(train_y, test_fraction)
            test_paths = [train_paths[i] for i in test_rows]
            train_paths = [train_paths[i] for i in train_rows]
            test_y, train_y = train_y[test_rows], train_y[train_rows]
        self.class_names = tuple(classes)
        # numpy string arrays, not lists: worker processes read them without copy-on-write
        self.paths = {"train": np.asarray(train_paths), "test": np.asarray(test_paths)}
        self.train_y, self.test_y = torch.from_numpy(train_y), torch.from_numpy(test_y)

    def _path(self, split: str, row: int) -> str:
        return str(self.paths["test" if split == "test" else "train"][row])

    def where(self, split: str, row: int) -> str:
        """The image's file."""
        return self._path(split, row)

    def probe_rows(self, split: str) -> range:
        """Every file: a header costs one small read."""
        return range(len(self.paths["test" if split == "test" else "train"]))

    def header(self, split: str, row: int) -> ImageHeader:
        """The file's header (size and colour), its pixels unread."""
        return probe(self._path(split, row))

    def read_raw(self, split: str, row: int) -> torch.Tensor:
        """Decode one file into uint8 `(channels, H, W)`."""
        return decode_file(self._path(split, row), self.channels or 3)

    def files_key(self) -> str:
        """SHA-256 over every image's path below the root, byte size and modification time."""
        digest = hashlib.sha256()
        for split in ("train", "test"):
            for path in self.paths[split]:
                stat = os.stat(path)
                rel = os.path.relpath(path, self.root)
                digest.update(f"{split}\0{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

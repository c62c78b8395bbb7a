"""`IndexedSource`: a source read one image at a time (files on disk, a `Dataset`, a HF dataset).

Unlike `SourceData`, which holds a whole source as tensors, an indexed source knows its classes
and class names at once but reads pixels only when asked (`read(split, row)`), so it can serve
data larger than memory through `DataLoader` workers (`clarena.cl_datasets.lazy`), or be decoded
once into a `SourceData` when it fits (`in_memory`). This module holds the base class, the seeded
held-out test split of sources without one, and `DatasetSource` over any map-style
`torch.utils.data.Dataset` with `targets`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from clarena.cl_datasets.images import ImageHeader, to_uint8_chw, unreadable
from clarena.cl_datasets.partition import stratified_parts

HOLDOUT_SEED = 0
"""The seed of the held-out test split of a source without one: a property of the source, not of
the experiment, so every run of a study tests on the same images."""

PROBE_ITEMS = 64
"""Items whose headers a source that cannot probe cheaply (a `Dataset`) reads for the checks."""


def holdout(classes: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """`(train, test)` positions: `test_fraction` of every class held out (seeded, stratified)."""
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(
            f"test_fraction must be in (0, 1) for a source without a test set, got {test_fraction}"
        )
    train, test = stratified_parts(classes, [1 - test_fraction, test_fraction], HOLDOUT_SEED, 5)
    return train, test


def check_labels(where: str, labels: np.ndarray, num_classes: int, fix: str) -> None:
    """Refuse labels outside `0..num_classes-1`, naming `where` and the `fix`."""
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise ValueError(
            f"{where}: labels outside 0..{num_classes - 1} (e.g. {int(bad[0])}, {bad.size} in "
            f"all): {fix}"
        )


class IndexedSource:
    """A source whose images are read one at a time.

    Subclasses set `name`, `class_names`, `train_y` and `test_y` (int64 tensors) at construction
    and define `read_raw` and `header`; the checks before training read the headers of
    `probe_rows` once.
    """

    name: str = "indexed"
    class_names: tuple[str, ...] = ()
    train_y: torch.Tensor
    test_y: torch.Tensor
    channels: int | None = None
    """1 or 3, set by the checks (`clarena.cl_datasets.lazy.prepare_indexed`): colour in any
    image read makes a source RGB."""

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.class_names)

    def __len__(self) -> int:
        """Images in the training and test sets together."""
        return int(self.train_y.shape[0] + self.test_y.shape[0])

    def probe_rows(self, split: str) -> range:
        """The rows of a split whose headers the checks read: the first `PROBE_ITEMS` by
        default (a source whose headers are cheap, files, reads every one)."""
        return range(
            min(PROBE_ITEMS, int((self.test_y if split == "test" else self.train_y).numel()))
        )

    def header(self, split: str, row: int) -> ImageHeader:
        """Size and colour of one image (without decoding it where the format allows)."""
        raise NotImplementedError

    def read_raw(self, split: str, row: int) -> torch.Tensor:
        """Image `row` of the `train` (also `val`) or `test` split as uint8 `(channels, H, W)`."""
        raise NotImplementedError

    def files_key(self) -> str | None:
        """A digest that changes when the images change, or `None` when it cannot be known
        without reading every image."""
        return None

    def content_key(self) -> str | None:
        """`files_key` with the channel count: the key of the cached statistics."""
        files = self.files_key()
        return f"{files}/{self.channels}" if files is not None else None

    def where(self, split: str, row: int) -> str:
        """How an image is named in messages."""
        return f"{self.name} {'test' if split == 'test' else 'train'} item {row}"


class DatasetSource(IndexedSource):
    """Any map-style `Dataset` whose items are `(image, class)` and which has `targets`.

    Images may be PIL images, or uint8 arrays / tensors `(H, W)`, `(H, W, C)` or `(C, H, W)`.
    """

    def __init__(
        self,
        train: Any,
        test: Any | None = None,
        class_names: Sequence[str] | None = None,
        test_fraction: float = 0.2,
        name: str = "dataset",
    ) -> None:
        """Read the targets (not the images).

        Args:
            train: the training `Dataset` (items `(image, class)`, attribute `targets`).
            test: the test `Dataset`; `None` holds out `test_fraction` of `train` (seeded).
            class_names: one name per class (default: the dataset's `classes`, else `"0"`, ...).
            test_fraction: the share of every class held out when `test` is `None`.
            name: the source's name in logs and reports.
        """
        self.name = name
        targets = [self._targets(d, label) for d, label in ((train, "train"), (test, "test"))]
        names = class_names if class_names is not None else getattr(train, "classes", None)
        num = len(names) if names is not None else int(max(t.max() for t in targets if t.size)) + 1
        for split, t in zip(("train", "test"), targets, strict=True):
            check_labels(
                f"{name} {split} targets", t, num, "give class_names with one name a class"
            )
        self.class_names = tuple(str(n) for n in names) if names else tuple(map(str, range(num)))
        self._sets = {"train": train, "test": test if test is not None else train}
        self._rows = {"train": np.arange(len(targets[0])), "test": np.arange(len(targets[1]))}
        if test is None:
            self._rows["train"], self._rows["test"] = holdout(targets[0], test_fraction)
            targets[1] = targets[0][self._rows["test"]]
            targets[0] = targets[0][self._rows["train"]]
        self.train_y = torch.from_numpy(targets[0].astype(np.int64))
        self.test_y = torch.from_numpy(targets[1].astype(np.int64))

    @staticmethod
    def _targets(dataset: Any, split: str) -> np.ndarray:
        if dataset is None:
            return np.zeros(0, dtype=np.int64)
        targets = getattr(dataset, "targets", None)
        if targets is None:
            raise ValueError(
                f"the {split} Dataset has no `targets`: give it a list of the class of every item"
            )
        array = np.asarray(targets.cpu() if isinstance(targets, torch.Tensor) else targets)
        if array.ndim != 1 or array.shape[0] != len(dataset) or array.dtype.kind not in "iu":
            raise ValueError(
                f"the {split} Dataset's targets must be {len(dataset)} integer classes, one an "
                f"item; got an array of shape {array.shape} and dtype {array.dtype}"
            )
        return array

    fingerprint: str | None = None
    """A digest of the items' content where the dataset knows one (a HF dataset's fingerprint)."""

    def files_key(self) -> str | None:
        """The `fingerprint`, or `None` without one."""
        return self.fingerprint or None

    def _item(self, split: str, row: int) -> Any:
        key = "test" if split == "test" else "train"
        item = self._sets[key][int(self._rows[key][row])]
        return item[0] if isinstance(item, tuple | list) else item

    def header(self, split: str, row: int) -> ImageHeader:
        """Size and colour of item `row` (read whole: a `Dataset` has no header)."""
        x = to_uint8_chw(self._item(split, row), 3, self.where(split, row))
        grey = bool((x[0] == x[1]).all() and (x[1] == x[2]).all())
        return ImageHeader(int(x.shape[1]), int(x.shape[2]), grey)

    def read_raw(self, split: str, row: int) -> torch.Tensor:
        """Item `row`'s image as uint8 `(channels, H, W)`."""
        where = self.where(split, row)
        try:
            return to_uint8_chw(self._item(split, row), self.channels or 3, where)
        except (OSError, SyntaxError) as err:  # Pillow's errors for a corrupt encoded image
            raise unreadable(where, err) from None

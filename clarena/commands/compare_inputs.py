"""What `clarena compare` reads, as data: prediction files, and the checks that OLD and NEW are
predictions on the same samples (`align`). Run folders and checkpoints are
`clarena.commands.compare_runs`.

A **prediction file** is a `.csv` (a header row) or an `.npz` (numpy arrays, read with
`allow_pickle=False`): a `label` and a `prediction` column, one row per sample; optionally `id`
(checked to be in the same order in both files) and `group` (a slice of each sample: a region, a
customer tier, ...). Labels are integers or strings; a column whose every value is an integer is
read as integers. A file that cannot be read, lacks a column or holds a bad value stops with one
`CompareInputError` line naming the file, the cause and the fix. Only numpy: no torch.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS: tuple[str, ...] = ("label", "prediction", "id", "group")
"""The columns of a prediction file; `label` and `prediction` are required."""

DATA_KEYS_IGNORED = frozenset(
    {"data_root", "download", "batch_size", "eval_batch_size", "device", "num_workers"}
)
"""Keys of a `cl_dataset` config that do not change which samples are tested or their labels."""

_INTEGER = re.compile(r"[+-]?\d+")


class CompareInputError(ValueError):
    """An input `clarena compare` cannot use; the message is one line with the cause and the fix."""


@dataclass
class Predictions:
    """One model's predictions on a list of samples, and where they came from."""

    source: str
    labels: np.ndarray
    predictions: np.ndarray
    ids: np.ndarray | None = None
    groups: np.ndarray | None = None
    tasks: np.ndarray | None = None
    """The test task of each sample (run folders and checkpoints)."""
    positions: np.ndarray | None = None
    """The index of each sample in its task's test set (run folders and checkpoints)."""
    config: dict[str, Any] | None = None
    """The run's resolved config (run folders and checkpoints)."""
    images: bool = False
    """Whether the test images can be read from `config`'s dataset (a checked config)."""
    notes: list[str] = field(default_factory=list)

    def select(self, keep: np.ndarray) -> Predictions:
        """The samples where `keep` is true, in order."""

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[keep]

        return Predictions(
            self.source,
            self.labels[keep],
            self.predictions[keep],
            cut(self.ids),
            cut(self.groups),
            cut(self.tasks),
            cut(self.positions),
            self.config,
            self.images,
            list(self.notes),
        )


def class_labels(values: np.ndarray) -> np.ndarray:
    """`values` as int64 when every one is an integer, else as strings (stripped for text).

    Raises:
        CompareInputError: on an empty or missing value, or a non-integral number.
    """
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise CompareInputError("holds numbers that are not integer class labels")
        return values.astype(np.int64)
    if values.dtype.kind not in "US":
        raise CompareInputError(f"holds values of dtype {values.dtype}, not class labels")
    text = np.char.strip(values.astype(str))
    empty = np.flatnonzero(text == "")
    if empty.size:
        raise CompareInputError(f"has an empty value at row {int(empty[0]) + 1}")
    if all(_INTEGER.fullmatch(v) for v in text.tolist()):
        return text.astype(np.int64)
    return text


def _columns_of_csv(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        rows = list(reader)
    wanted = [c for c in COLUMNS if c in header]
    for i, row in enumerate(rows, start=2):
        if None in row or any(row[c] is None for c in wanted):
            raise CompareInputError(f"row {i} has {len(header)} columns expected as in the header")
    return {c: np.asarray([row[c] for row in rows], dtype=str) for c in wanted}


def _columns_of_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        columns = {c: archive[c] for c in COLUMNS if c in archive.files}
    for name, values in columns.items():
        if values.ndim != 1:
            raise CompareInputError(f"array {name!r} has shape {values.shape}; save a 1-D array")
    return columns


def read_prediction_file(path: Path) -> Predictions:
    """Read a `.csv` or `.npz` prediction file (module docstring).

    Raises:
        CompareInputError: the file is unreadable, lacks a column or holds a bad value.
    """
    reader = {".csv": _columns_of_csv, ".npz": _columns_of_npz}[path.suffix.lower()]
    try:
        columns = reader(path)
    except CompareInputError as exc:
        raise CompareInputError(f"{path}: {exc}") from None
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:  # also a damaged zip
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CompareInputError(
            f"cannot read {path} ({cause}); pass a CSV with a header row or an .npz of arrays"
        ) from None
    missing = [c for c in ("label", "prediction") if c not in columns]
    if missing:
        raise CompareInputError(
            f"{path} has no {' or '.join(repr(c) for c in missing)} column; a prediction file "
            "needs 'label' and 'prediction' (optional: 'id', 'group'), one row per sample"
        )
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise CompareInputError(f"{path}: its arrays differ in length; save one value per sample")
    if not next(iter(lengths)):
        raise CompareInputError(f"{path} holds no sample; pass the predictions on a test set")
    try:
        labels = class_labels(columns["label"])
    except CompareInputError as exc:
        raise CompareInputError(f"{path}: column 'label' {exc}") from None
    try:
        preds = class_labels(columns["prediction"])
    except CompareInputError as exc:
        raise CompareInputError(f"{path}: column 'prediction' {exc}") from None
    text = {c: columns[c].astype(str) for c in ("id", "group") if c in columns}
    return Predictions(str(path), labels, preds, text.get("id"), text.get("group"))


def _dataset(config: dict[str, Any] | None) -> dict[str, Any] | None:
    node = (config or {}).get("cl_dataset")
    if not isinstance(node, dict):
        return None
    return {k: v for k, v in node.items() if k not in DATA_KEYS_IGNORED}


def _shown(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _first_difference(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.flatnonzero(a != b)[0])


def align(old: Predictions, new: Predictions) -> tuple[Predictions, Predictions]:
    """Check that OLD and NEW are predictions on the same samples, and make them comparable.

    Two runs are compared on the test tasks both final models were tested on, and only when
    their datasets match (`cl_dataset` equal but for `DATA_KEYS_IGNORED`). Labels of both
    inputs must be equal sample by sample (and `id`s, when both have them); labels are compared
    as integers when every label and prediction is one, else as strings.

    Raises:
        CompareInputError: one line naming the first disagreement.
    """
    if old.tasks is not None and new.tasks is not None:
        common = np.intersect1d(old.tasks, new.tasks)
        if not common.size:
            raise CompareInputError(
                f"{old.source} and {new.source} were tested on no common task; compare runs of "
                "the same task sequence"
            )
        old, new = old.select(np.isin(old.tasks, common)), new.select(np.isin(new.tasks, common))
    data_old, data_new = _dataset(old.config), _dataset(new.config)
    if data_old is not None and data_new is not None and data_old != data_new:
        key = next(k for k in sorted({*data_old, *data_new}) if data_old.get(k) != data_new.get(k))
        raise CompareInputError(
            f"{old.source} and {new.source} were tested on different datasets (cl_dataset.{key}: "
            f"{data_old.get(key)!r} vs {data_new.get(key)!r}); compare models on the same data"
        )
    if len(old.labels) != len(new.labels):
        raise CompareInputError(
            f"{old.source} has {len(old.labels)} samples and {new.source} {len(new.labels)}; "
            "pass predictions on the same samples, one row per sample in the same order"
        )
    columns = [old.labels, old.predictions, new.labels, new.predictions]
    if not all(c.dtype.kind == "i" for c in columns):
        old.labels, old.predictions, new.labels, new.predictions = (c.astype(str) for c in columns)
    if old.ids is not None and new.ids is not None and not np.array_equal(old.ids, new.ids):
        i = _first_difference(old.ids, new.ids)
        raise CompareInputError(
            f"the ids of {old.source} and {new.source} differ at row {i + 1} "
            f"({_shown(old.ids[i])} vs {_shown(new.ids[i])}); write both files in the same order"
        )
    if not np.array_equal(old.labels, new.labels):
        i = _first_difference(old.labels, new.labels)
        raise CompareInputError(
            f"the labels of {old.source} and {new.source} disagree at row {i + 1} "
            f"({_shown(old.labels[i])} vs {_shown(new.labels[i])}); pass predictions on the same "
            "samples in the same order"
        )
    if old.groups is not None and new.groups is not None:
        if not np.array_equal(old.groups, new.groups):
            i = _first_difference(old.groups, new.groups)
            raise CompareInputError(
                f"the groups of {old.source} and {new.source} disagree at row {i + 1} "
                f"({_shown(old.groups[i])} vs {_shown(new.groups[i])}); give each sample one group"
            )
    elif old.groups is not None or new.groups is not None:
        old.groups = new.groups = old.groups if old.groups is not None else new.groups
    return old, new

"""`hf_source`: a Hugging Face dataset saved on disk, read per image (the extra `clarena[hf]`).

`root` is a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk` (read with
`datasets.load_from_disk`), or a folder of `.parquet` or `.arrow` files named after their split
(`train-00000-of-00002.parquet`, `test.arrow`, or `train/*.parquet`). Nothing is downloaded. The
image column holds images (the `Image` feature, read from its bytes or path without decoding the
whole column) or pixel arrays; the label column holds integers, and its `ClassLabel` names name the
classes. A dataset without a test split holds out `test_fraction` of the training split.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from clarena.cl_datasets.indexed import DatasetSource


def _require_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ValueError(
            "source=hf needs the Hugging Face datasets package: pip install 'clarena[hf]'"
        ) from None
    return datasets


class HFColumns:
    """One split of a HF dataset as `(image, class)` items with `targets` (picklable)."""

    def __init__(self, dataset: Any, image_column: str, label_column: str, where: str) -> None:
        """Check the columns and read the labels (not the images)."""
        for column in (image_column, label_column):
            if column not in dataset.column_names:
                raise ValueError(
                    f"{where} has no column {column!r} (columns: {', '.join(dataset.column_names)})"
                    ": set cl_dataset.source_options.image_column / label_column"
                )
        datasets = _require_datasets()
        if isinstance(dataset.features[image_column], datasets.Image):
            dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
        self.dataset = dataset.select_columns([image_column])
        self.image_column = image_column
        self.targets = np.asarray(dataset[label_column])
        feature = dataset.features[label_column]
        self.classes = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None

    def __len__(self) -> int:
        """Items in the split."""
        return len(self.targets)

    def __getitem__(self, row: int) -> tuple[Any, int]:
        """`(image, class)`: a PIL image for the `Image` feature, else the stored array."""
        value = self.dataset[int(row)][self.image_column]
        if isinstance(value, dict) and ("bytes" in value or "path" in value):
            from PIL import Image

            data = value.get("bytes")
            value = Image.open(io.BytesIO(data) if data is not None else value["path"])
        return value, int(self.targets[row])


def _split_files(root: Path, split: str) -> list[str]:
    for suffix in (".parquet", ".arrow"):
        files = sorted(root.glob(f"{split}*{suffix}")) + sorted(root.glob(f"{split}/*{suffix}"))
        if files:
            return [str(f) for f in files]
    return []


def _open(root: Path, split: str) -> Any | None:
    datasets = _require_datasets()
    files = _split_files(root, split)
    if not files:
        return None
    if files[0].endswith(".arrow"):
        parts = [datasets.Dataset.from_file(f) for f in files]
        return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return datasets.Dataset.from_parquet(files)


def hf_source(
    root: str | Path,
    image_column: str = "image",
    label_column: str = "label",
    train_split: str = "train",
    test_split: str = "test",
    test_fraction: float = 0.2,
) -> DatasetSource:
    """Open a HF dataset on disk as an indexed source (see the module's docstring).

    Raises:
        ValueError: without the `datasets` package, for a missing folder, split or column.
    """
    datasets = _require_datasets()
    root = Path(root).expanduser().absolute()
    if not root.exists():
        raise ValueError(
            f"Hugging Face dataset {str(root)!r} not found: set cl_dataset.root to a folder "
            "written by save_to_disk, or one of .parquet / .arrow files"
        )
    splits: dict[str, Any] = {}
    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        loaded = datasets.load_from_disk(str(root))
        splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {train_split: loaded}
    else:
        for split in (train_split, test_split):
            opened = _open(root, split)
            if opened is not None:
                splits[split] = opened
    if train_split not in splits:
        raise ValueError(
            f"{str(root)!r} has no split {train_split!r} (found: {', '.join(splits) or 'none'}): "
            "set cl_dataset.source_options.train_split"
        )
    where = f"{root} [{train_split}]"
    train = HFColumns(splits[train_split], image_column, label_column, where)
    test = None
    if test_split in splits:
        test = HFColumns(splits[test_split], image_column, label_column, f"{root} [{test_split}]")
    source = DatasetSource(train, test, train.classes, test_fraction, name=root.name)
    fingerprints = [getattr(splits[s], "_fingerprint", None) for s in sorted(splits)]
    source.fingerprint = "/".join(map(str, fingerprints)) if all(fingerprints) else None
    return source

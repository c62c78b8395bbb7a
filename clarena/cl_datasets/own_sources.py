"""The user's sources by name, as a config gives them: `source: folder | npz | hf` with `root`.

- `folder`: `ImageFolderSource(root, test_fraction)`, images read one file at a time;
- `npz`: `load_npz(root)`, arrays held in memory;
- `hf`: `hf_source(root, test_fraction=..., **source_options)`, a Hugging Face dataset on disk
  (`source_options`: `image_column`, `label_column`, `train_split`, `test_split`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clarena.cl_datasets.indexed import IndexedSource
from clarena.cl_datasets.sources import SourceData

OWN_SOURCES = ("folder", "npz", "hf")
"""The source names that read the user's data at `root`."""


def open_own_source(
    kind: str, root: Any, test_fraction: float, options: Mapping[str, Any] | None
) -> SourceData | IndexedSource:
    """Open the user's data at `root` as the source `kind` (one of `OWN_SOURCES`).

    Raises:
        ValueError: without `root`, for options the source does not take, or bad data.
    """
    if root is None or str(root) in ("", "???"):
        raise ValueError(f"source={kind} reads your data: set cl_dataset.root=<path>")
    options = dict(options or {})
    if kind == "hf":
        from clarena.cl_datasets.hf import hf_source

        allowed = {"image_column", "label_column", "train_split", "test_split"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(
                f"source_options {unknown} unknown for source=hf: use {', '.join(sorted(allowed))}"
            )
        return hf_source(root, test_fraction=test_fraction, **options)
    if options:
        raise ValueError(f"source={kind} takes no source_options, got {sorted(options)}")
    if kind == "folder":
        from clarena.cl_datasets.folder import ImageFolderSource

        return ImageFolderSource(root, test_fraction)
    from clarena.cl_datasets.arrays import load_npz

    return load_npz(root)

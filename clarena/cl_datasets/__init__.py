"""Task-sequenced datasets: the benchmark layer of clarena.

`CLDataset` is a `LightningDataModule` over a sequence of tasks. Pick a construction and a source:

- constructions: `SplitCLDataset` (classes divided into tasks), `PermutedCLDataset` (one pixel
  permutation per task), `RotatedCLDataset` (one angle per task), `DataIncrementalCLDataset`
  (new samples of the same classes per task);
- sources (`list_sources()`): `digits` (scikit-learn's 8×8 digits, embedded: works offline),
  `mnist`, `fashion_mnist`, `cifar10`, `cifar100`; your own data at `root`: `folder` (image
  folders), `npz` (arrays), `hf` (a Hugging Face dataset on disk); in Python `array_source`
  (numpy arrays, tensors), `ImageFolderSource`, `DatasetSource` (any map-style `Dataset` with
  `targets`) or `hf_source`.

Data lives in memory as uint8 tensors on the training device and is normalised (and, for CIFAR,
augmented) a batch at a time there. Batches are `(x, y, task_ids)`; tasks are numbered from 1;
the label spaces of the scenarios `TIL`, `CIL`, `DIL` and `DataIL` are described in
`clarena.cl_datasets.base`.

Files are read from `data_root` (default: `default_data_root()`, i.e. `$CLARENA_DATA_ROOT` or
`~/.local/share/clarena/data`) in torchvision's layout and downloaded there where the network
allows; a missing dataset raises `DatasetNotFoundError` saying which files must go where.
Hydra configs for the usual benchmarks are in `clarena/configs/cl_dataset/` (`split_digits`,
`split_mnist`, `split_fmnist`, `permuted_mnist`, `permuted_fmnist`, `rotated_mnist`,
`split_cifar10`, `split_cifar100`, `update_fmnist`, `update_digits`, `permuted_digits`).

Example:
    >>> from clarena.cl_datasets import SplitCLDataset
    >>> data = SplitCLDataset("digits", "TIL", classes_per_task=2, batch_size=32)
    >>> data.num_tasks, data.input_shape, data.output_dim(1)
    (5, (1, 8, 8), 2)
    >>> data.setup_task(1)
    >>> x, y, task_ids = next(iter(data.train_dataloader()))
    >>> x.shape, y.dtype, task_ids[0].item()
    (torch.Size([32, 1, 8, 8]), torch.int64, 1)
"""

from clarena.cl_datasets.arrays import array_source, load_npz
from clarena.cl_datasets.base import SCENARIOS, CLDataset
from clarena.cl_datasets.data_incremental import DataIncrementalCLDataset, chunk_positions
from clarena.cl_datasets.folder import ImageFolderSource
from clarena.cl_datasets.hf import hf_source
from clarena.cl_datasets.images import ImageError
from clarena.cl_datasets.indexed import DatasetSource, IndexedSource
from clarena.cl_datasets.lazy import LazyLoader
from clarena.cl_datasets.loader import InMemoryLoader
from clarena.cl_datasets.paths import default_data_root, resolve_data_root
from clarena.cl_datasets.permuted import PermutedCLDataset, task_permutations
from clarena.cl_datasets.rotated import RotatedCLDataset
from clarena.cl_datasets.sources import (
    DatasetNotFoundError,
    SourceData,
    list_sources,
    load_source,
)
from clarena.cl_datasets.split import SplitCLDataset, split_classes

# The public names, and the submodules (listed so that pdoc documents them too).
__all__ = [
    "SCENARIOS",
    "CLDataset",
    "DataIncrementalCLDataset",
    "DatasetNotFoundError",
    "DatasetSource",
    "ImageError",
    "ImageFolderSource",
    "InMemoryLoader",
    "IndexedSource",
    "LazyLoader",
    "PermutedCLDataset",
    "RotatedCLDataset",
    "SourceData",
    "SplitCLDataset",
    "array_source",
    "arrays",
    "base",
    "chunk_positions",
    "data_incremental",
    "default_data_root",
    "folder",
    "formats",
    "hf",
    "hf_source",
    "images",
    "indexed",
    "lazy",
    "list_sources",
    "load_npz",
    "load_source",
    "loader",
    "own_sources",
    "partition",
    "paths",
    "permuted",
    "pipeline",
    "resolve_data_root",
    "rotated",
    "sources",
    "split",
    "split_classes",
    "task_permutations",
    "transforms",
]

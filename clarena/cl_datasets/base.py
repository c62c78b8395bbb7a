"""`CLDataset`: the LightningDataModule that knows the task sequence and the current task.

A construction (split, permuted, rotated, data-incremental) is a subclass that says which source
classes each task holds, which samples it takes, and which task transform applies; everything
else — loading the source, the validation split, label spaces, devices, loaders — lives here once.

Label spaces (task $t$ holds the classes $c_{t,0}, \\dots, c_{t,C_t-1}$ in its order):

- TIL and DIL: $y = i$ for class $c_{t,i}$ (with the task id handed to the model in TIL); for
  permuted and rotated tasks the classes are $0..K-1$ in order, so $y$ is the original class;
- CIL: $y = \\sum_{s<t} C_s + i$, one growing label space; the head has a logit for every class
  seen so far (`active_classes="all_so_far"`) or for every class of the sequence from the first
  task on (`"all"`, the units of later classes trained as negatives before their task);
- DataIL: $y$ is the original class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningDataModule

from clarena.cl_datasets.indexed import IndexedSource
from clarena.cl_datasets.lazy import (
    LazyLoader,
    SourceImages,
    load_prepared,
    prepare_indexed,
    source_stats,
)
from clarena.cl_datasets.loader import InMemoryLoader
from clarena.cl_datasets.own_sources import OWN_SOURCES, open_own_source
from clarena.cl_datasets.partition import stratified_parts
from clarena.cl_datasets.paths import default_data_root, resolve_data_root
from clarena.cl_datasets.pipeline import ImagePipeline
from clarena.cl_datasets.sources import SourceData, source_info
from clarena.cl_datasets.transforms import BatchTransform, PixelPermutation, Rotation, channel_stats
from clarena.core.scenarios import SCENARIOS

ACTIVE_CLASSES: tuple[str, ...] = ("all_so_far", "all")
"""The values of `CLDataset`'s `active_classes`."""


class CLDataset(LightningDataModule):
    """A sequence of tasks over one source; `setup_task(t)` makes task `t` current."""

    supported_scenarios: ClassVar[tuple[str, ...]] = ("TIL", "CIL", "DIL")
    """The scenarios this construction can serve."""

    def __init__(
        self,
        source: str | SourceData | IndexedSource,
        scenario: str,
        data_root: str | Path | None = None,
        seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        val_fraction: float = 0.1,
        download: bool = True,
        augment: bool = False,
        crop_padding: int = 4,
        horizontal_flip: bool = True,
        normalize_mean: Sequence[float] | None = None,
        normalize_std: Sequence[float] | None = None,
        test_all_tasks: bool = False,
        cumulative: bool = False,
        drop_last: bool = False,
        root: str | Path | None = None,
        test_fraction: float = 0.2,
        source_options: Mapping[str, Any] | None = None,
        transforms: Mapping[str, Any] | None = None,
        in_memory: str | bool = "auto",
        memory_budget_mb: float | None = None,
        num_workers: int = 0,
        pin_memory: bool | str = "auto",
        persistent_workers: bool = True,
        device: str | torch.device | None = None,
        active_classes: str = "all_so_far",
    ) -> None:
        """Check the settings; no file is read until the data is needed.

        Args:
            source: a source name (`digits`, `mnist`, `fashion_mnist`, `cifar10`, `cifar100`),
                your data at `root` (`folder`, `npz`, `hf`: `clarena.cl_datasets.own_sources`),
                or in Python a `SourceData` (`array_source`) or an `IndexedSource`
                (`ImageFolderSource`, `DatasetSource`).
            scenario: one of `supported_scenarios`.
            data_root: the data folder (`None`: `default_data_root()`); must exist if given.
            seed: seeds class orders, permutations, chunks, the validation split and shuffling.
            batch_size: training batch size.
            eval_batch_size: validation and test batch size.
            val_fraction: fraction of every class's training samples held out for validation.
            download: try to download missing files (torchvision's downloaders).
            augment: random crop (`crop_padding`) and horizontal flip on training batches.
            crop_padding: zero padding of the random crop, in pixels.
            horizontal_flip: flip half of the training samples when augmenting.
            normalize_mean: per-channel mean in $[0, 1]$ (default: computed on the training data).
            normalize_std: per-channel std (default: computed on the training data).
            test_all_tasks: `test_dataloader()` covers every task (forward transfer), not `1..t`.
            cumulative: training serves all tasks `1..t` (also per call of `setup_task`).
            drop_last: drop the last incomplete training batch.
            root: your data for the sources `folder`, `npz` and `hf` (a folder or a file).
            test_fraction: share of every class held out as the test set of a source without
                one (seeded, the same in every run).
            source_options: options of the source `hf` (`image_column`, `label_column`, ...).
            transforms: per-image v2 pipelines of a source read per image
                (`clarena.cl_datasets.pipeline`): `{train: [...], test: [...]}`.
            in_memory: where the images of a source read per image live: `true` (decoded once),
                `false` (read lazily by `DataLoader` workers) or `auto` (in memory when they fit
                `memory_budget_mb` and no `transforms.train` runs per epoch; the choice is logged).
            memory_budget_mb: the budget of `in_memory: auto` (default: half the free memory).
            num_workers: `DataLoader` worker processes of the lazy path (0: this process).
            pin_memory: page-locked batches on the lazy path (`auto`: when training on CUDA).
            persistent_workers: keep the lazy path's training workers between epochs.
            device: where data and batches live (default: the trainer's device, else CPU).
            active_classes: CIL's output units: `"all_so_far"` (the classes of tasks `1..t`) or
                `"all"` (every class of the sequence from task 1, see `head_outputs`); the other
                scenarios' heads do not depend on it.
        """
        super().__init__()
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
        if scenario not in self.supported_scenarios:
            raise ValueError(
                f"{type(self).__name__} does not support scenario {scenario!r}: choose one of "
                f"{', '.join(self.supported_scenarios)}"
            )
        if active_classes not in ACTIVE_CLASSES:
            raise ValueError(
                f"active_classes={active_classes!r} is not a choice: use "
                + " or ".join(ACTIVE_CLASSES)
            )
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if data_root is not None and str(data_root) != "":
            folder = Path(data_root).expanduser().absolute()
            if folder != default_data_root() and not folder.is_dir():
                resolve_data_root(folder)  # raises the clear error
        if isinstance(source, str) and source in OWN_SOURCES:
            source = open_own_source(source, root, test_fraction, source_options)
        self._indexed = source if isinstance(source, IndexedSource) else None
        self.pipeline = ImagePipeline(transforms)
        """The per-image transforms of a source read per image."""
        if transforms and self._indexed is None:
            raise ValueError(
                "transforms apply to sources read per image (folder, hf, a Dataset): use "
                "augment, crop_padding and horizontal_flip for this source"
            )
        self._data: SourceData | None = None
        self._input_shape: tuple[int, int, int] | None = None
        if isinstance(source, SourceData):
            self._data, self._input_shape = source, source.input_shape
            self.source_name, self.num_classes = source.name, source.num_classes
        elif isinstance(source, IndexedSource):
            self.source_name, self.num_classes = source.name, source.num_classes
        else:
            info = source_info(source)
            self.source_name, self.num_classes = info.name, info.num_classes
            self._input_shape = info.input_shape
        self.in_memory, self.memory_budget_mb = in_memory, memory_budget_mb
        self.num_workers, self.pin_memory = int(num_workers), pin_memory
        self.persistent_workers = persistent_workers
        self.loading: str = "in memory"
        """Where the images live and why (for a source read per image: `prepare_indexed`)."""
        self.scenario = scenario
        self.data_root, self.seed, self.download = data_root, int(seed), download
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction = float(val_fraction)
        self.augment, self.horizontal_flip = augment, horizontal_flip
        self.crop_padding = crop_padding
        self.normalize_mean, self.normalize_std = normalize_mean, normalize_std
        self.test_all_tasks, self.cumulative, self.drop_last = test_all_tasks, cumulative, drop_last
        self.device = torch.device(device) if device is not None else None
        self.active_classes = active_classes
        """CIL's output units: `"all_so_far"` or `"all"`."""
        self.task_id: int | None = None
        """The current task (set by `setup_task`)."""
        self._serve_cumulative = False
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}
        self._transform: BatchTransform | None = None
        self._pools: dict[str, torch.Tensor] = {}

    # ----------------------------------------------------------------- what subclasses define
    def task_classes(self) -> list[tuple[int, ...]]:
        """The source classes of every task, in each task's order (entry `t-1` for task `t`)."""
        raise NotImplementedError

    def task_transform(self) -> PixelPermutation | Rotation | None:
        """The per-task input transform (none by default)."""
        return None

    def select(self, task_id: int, split: str, pool_classes: torch.Tensor) -> torch.Tensor:
        """Positions in a pool (`split` is `train`, `val` or `test`) that task `task_id` takes.

        The default takes every sample of the task's classes.
        """
        wanted = torch.tensor(self.classes_of_task(task_id), dtype=torch.int64)
        return torch.nonzero(torch.isin(pool_classes, wanted)).flatten()

    # ----------------------------------------------------------------- the task sequence
    @property
    def num_tasks(self) -> int:
        """The number of tasks."""
        return len(self.task_classes())

    def _check_task(self, task_id: int) -> None:
        if isinstance(task_id, bool) or not isinstance(task_id, Integral):
            raise ValueError(f"task_id must be an integer in 1..{self.num_tasks}, got {task_id!r}")
        if not 1 <= task_id <= self.num_tasks:
            raise ValueError(f"task_id must be an integer in 1..{self.num_tasks}, got {task_id!r}")

    def classes_of_task(self, task_id: int) -> tuple[int, ...]:
        """The source classes of task `task_id`, in the task's order."""
        self._check_task(task_id)
        return self.task_classes()[task_id - 1]

    def label_map(self, task_id: int) -> dict[int, int]:
        """Source class → label in the scenario's label space, for the samples of task `task_id`."""
        classes = self.classes_of_task(task_id)
        if self.scenario == "DataIL":
            return {c: c for c in classes}
        offset = 0
        if self.scenario == "CIL":
            offset = sum(len(self.classes_of_task(s)) for s in range(1, task_id))
        return {c: offset + i for i, c in enumerate(classes)}

    def output_dim(self, task_id: int) -> int:
        """Logits the head for task `task_id` needs (TIL: $C_t$; CIL: $\\sum_{s \\le t} C_s$;
        DIL: the largest $C_t$; DataIL: the source's classes)."""
        self._check_task(task_id)
        if self.scenario == "TIL":
            return len(self.classes_of_task(task_id))
        if self.scenario == "CIL":
            return sum(len(self.classes_of_task(s)) for s in range(1, task_id + 1))
        if self.scenario == "DIL":
            return max(len(c) for c in self.task_classes())
        return self.num_classes

    @property
    def head_outputs(self) -> int | None:
        """The CIL head's width from the first task on with `active_classes="all"`: the classes of
        the whole sequence (the reference implementation of van de Ven et al. 2022 with
        `--active-classes=all`); `None` for a head that grows with `output_dim` (the other
        scenarios, and CIL with `"all_so_far"`)."""
        if self.scenario != "CIL" or self.active_classes == "all_so_far":
            return None
        return self.output_dim(self.num_tasks)

    def setup_task(self, task_id: int, cumulative: bool = False) -> None:
        """Make task `task_id` current; `cumulative=True` trains on all tasks `1..task_id`."""
        self._check_task(task_id)
        self.task_id = int(task_id)
        self._serve_cumulative = cumulative or self.cumulative
        self._ensure_loaded()

    # ----------------------------------------------------------------- data
    @property
    def input_shape(self) -> tuple[int, int, int]:
        """`(C, H, W)` of one model input (a source read per image is checked first)."""
        if self._input_shape is None:
            self._prepare_indexed()
        assert self._input_shape is not None
        return self._input_shape

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The names of the source's classes where it brings them (folder names, an `.npz`'s
        `class_names`, a HF `ClassLabel`); `None` for the built-in sources."""
        if self._indexed is not None:
            return self._indexed.class_names
        return self._data.class_names if self._data is not None else None

    def _prepare_indexed(self) -> None:
        assert self._indexed is not None
        self._prepared = prepare_indexed(
            self._indexed, self.pipeline, self.in_memory, self.memory_budget_mb, self.num_workers
        )
        self._input_shape, self.loading = self._prepared.input_shape, self._prepared.choice

    def _classes(self, split: str) -> torch.Tensor:
        """The source classes of the source's `train` (also `val`) or `test` set."""
        held = self._data if self._data is not None else self._indexed
        assert held is not None
        return held.test_y if split == "test" else held.train_y

    @property
    def data(self) -> SourceData:
        """The source in memory (loaded on first use)."""
        self._ensure_loaded()
        if self._data is None:
            raise RuntimeError(f"{self.loading}: the images are not held in memory")
        return self._data

    @property
    def normalization(self) -> tuple[list[float], list[float]]:
        """`(mean, std)` per channel of the images scaled to $[0, 1]$, as the loaders use them."""
        self._ensure_loaded()
        assert self._transform is not None
        return self._transform.mean.tolist(), self._transform.std.tolist()

    def prepare_data(self) -> None:
        """Download missing files (Lightning calls this on one process per node)."""
        self._ensure_loaded()

    def setup(self, stage: str | None = None) -> None:
        """Load the source (Lightning calls this on every process)."""
        self._ensure_loaded()

    def _ensure_loaded(self) -> None:
        if self._indexed is not None and self._input_shape is None:
            self._prepare_indexed()
        if self._indexed is not None and self._data is None:  # in memory: decoded once here
            self._data = load_prepared(
                self._prepared, self._indexed, self.pipeline, self.num_workers
            )
        if self._data is None and self._indexed is None:
            info = source_info(self.source_name)
            root = resolve_data_root(self.data_root) if info.needs_files else None
            self._data = info.load(root, self.download)
        if "train" in self._pools:
            return
        train, val = stratified_parts(
            self._classes("train").numpy(), [1 - self.val_fraction, self.val_fraction], self.seed, 1
        )
        self._pools = {
            "train": torch.from_numpy(train),
            "val": torch.from_numpy(val),
            "test": torch.arange(self._classes("test").shape[0]),
        }
        if self.normalize_mean is None or self.normalize_std is None:
            if self._indexed is None:
                assert self._data is not None
                mean, std = channel_stats(self._data.train_x[self._pools["train"]])
            elif self._data is not None:  # a source read per image: its whole training set
                mean, std = channel_stats(self._data.train_x)
            else:
                mean, std = source_stats(self._indexed, self.pipeline, self.num_workers)
        mean = list(self.normalize_mean) if self.normalize_mean is not None else mean
        std = list(self.normalize_std) if self.normalize_std is not None else std
        if len(mean) != self.input_shape[0] or len(std) != self.input_shape[0]:
            raise ValueError(f"normalize_mean/std need {self.input_shape[0]} values, one a channel")
        self._transform = BatchTransform(
            mean,
            std,
            self.task_transform(),
            crop_padding=self.crop_padding if self.augment else 0,
            horizontal_flip=self.horizontal_flip and self.augment,
        )

    def _target_device(self) -> torch.device:
        if self.device is not None:
            return self.device
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.strategy.root_device
        return torch.device("cpu")

    def _images(self, split: str) -> torch.Tensor:
        device = self._target_device()
        if device not in self._on_device:
            self._on_device.clear()  # keep one copy: the device we train on
            data = self.data
            self._on_device[device] = (data.train_x.to(device), data.test_x.to(device))
        train_x, test_x = self._on_device[device]
        return test_x if split == "test" else train_x

    def task_samples(self, task_id: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """`(rows, classes)` of task `task_id` in a split: rows of the source's train set (for
        `train` and `val`) or test set (for `test`), and their source classes (CPU tensors)."""
        self._check_task(task_id)
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self._ensure_loaded()
        pool = self._pools[split]
        all_classes = self._classes(split)
        pool_classes = all_classes[pool]
        positions = self.select(task_id, split, pool_classes)
        return pool[positions], pool_classes[positions]

    def _loader(self, tasks: Sequence[int], split: str) -> InMemoryLoader | LazyLoader:
        rows, labels, task_ids = [], [], []
        for t in tasks:
            task_rows, classes = self.task_samples(t, split)
            lut = torch.full((self.num_classes,), -1, dtype=torch.int64)
            for c, label in self.label_map(t).items():
                lut[c] = label
            rows.append(task_rows)
            labels.append(lut[classes])
            task_ids.append(torch.full_like(task_rows, t))
        assert self._transform is not None
        train = split == "train"
        seed = self.seed * 1_000_003 + tasks[-1]
        if self._data is None:  # the lazy path
            assert self._indexed is not None
            device = self._target_device()
            images = SourceImages(
                self._indexed, split, torch.cat(rows).numpy(), self.pipeline, train, seed
            )
            return LazyLoader(
                images,
                torch.cat(labels),
                torch.cat(task_ids),
                self._transform,
                self.batch_size if train else self.eval_batch_size,
                device,
                train=train,
                drop_last=self.drop_last,
                seed=seed,
                num_workers=self.num_workers,
                pin_memory=device.type == "cuda"
                if self.pin_memory == "auto"
                else bool(self.pin_memory),
                persistent_workers=self.persistent_workers and train,
            )
        return InMemoryLoader(
            self._images(split),
            torch.cat(rows),
            torch.cat(labels),
            torch.cat(task_ids),
            self._transform,
            self.batch_size if train else self.eval_batch_size,
            train=train,
            drop_last=self.drop_last,
            seed=seed,
        )

    def _current(self) -> list[int]:
        if self.task_id is None:
            raise RuntimeError(
                "no current task: call setup_task(task_id) before asking for loaders"
            )
        return list(range(1, self.task_id + 1)) if self._serve_cumulative else [self.task_id]

    def train_dataloader(self) -> InMemoryLoader | LazyLoader:
        """Training batches of the current task (of tasks `1..t` when cumulative)."""
        return self._loader(self._current(), "train")

    def val_dataloader(self) -> InMemoryLoader | LazyLoader:
        """Validation batches of the current task (of tasks `1..t` when cumulative)."""
        return self._loader(self._current(), "val")

    def task_test_dataloader(self, task_id: int) -> InMemoryLoader | LazyLoader:
        """Test batches of any one task."""
        return self._loader([task_id], "test")

    def test_dataloader(self) -> list[InMemoryLoader | LazyLoader]:
        """Test loaders of tasks `1..t` (all with `test_all_tasks`); index `i` ↔ task `i+1`."""
        last = self.num_tasks if self.test_all_tasks else self._current()[-1]
        return [self.task_test_dataloader(t) for t in range(1, last + 1)]

    def describe(self) -> dict[str, Any]:
        """A summary for logs and reports: source, scenario, tasks and their classes."""
        return {
            "source": self.source_name,
            "construction": type(self).__name__,
            "scenario": self.scenario,
            "loading": self.loading,
            "num_tasks": self.num_tasks,
            "classes_of_task": {
                t: list(self.classes_of_task(t)) for t in range(1, self.num_tasks + 1)
            },
        }

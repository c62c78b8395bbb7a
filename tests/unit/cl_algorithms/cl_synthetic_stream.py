"""A tiny synthetic task stream for the algorithm tests: Gaussian clusters in `(1, 4, 4)` inputs.

`SyntheticStream` mimics `clarena.cl_datasets.CLDataset` (the contract of `docs/architecture.md`):
`setup_task(t, cumulative=False)`, `train_dataloader()`, `val_dataloader()`, `test_dataloader()`
(one loader per task so far), `output_dim(t)`, `num_tasks`, `input_shape`, `scenario`, with batches
`(x, y, task_ids)` in the scenario's label space.
"""

from __future__ import annotations

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, TensorDataset

INPUT_SHAPE = (1, 4, 4)


class SyntheticStream(LightningDataModule):
    """`num_tasks` tasks of `classes_per_task` classes, `n_per_class` training samples per class.

    Split construction (TIL, CIL, DIL) with distinct classes per task; for DIL the label is the
    position inside the task, for DataIL every task holds new samples of the same classes.
    """

    def __init__(
        self,
        scenario: str,
        num_tasks: int = 2,
        classes_per_task: int = 2,
        n_per_class: int = 16,
        batch_size: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.scenario = scenario
        self.num_tasks = num_tasks
        self.classes_per_task = classes_per_task
        self.batch_size = batch_size
        self.input_shape = INPUT_SHAPE
        g = torch.Generator().manual_seed(seed)
        n_classes = classes_per_task if scenario == "DataIL" else classes_per_task * num_tasks
        dim = 16
        self.means = 3.0 * torch.randn(n_classes, dim, generator=g)
        self.train_sets = [self._make(t, n_per_class, g) for t in range(1, num_tasks + 1)]
        self.test_sets = [self._make(t, n_per_class // 2, g) for t in range(1, num_tasks + 1)]
        self.task_id = 0
        self.cumulative = False

    def _make(self, t: int, n: int, g: torch.Generator) -> TensorDataset:
        xs, ys = [], []
        for k in range(self.classes_per_task):
            cls = k if self.scenario == "DataIL" else (t - 1) * self.classes_per_task + k
            xs.append(self.means[cls] + torch.randn(n, 16, generator=g))
            if self.scenario == "CIL":
                label = cls
            else:
                label = k
            ys.append(torch.full((n,), label, dtype=torch.long))
        x = torch.cat(xs).view(-1, *INPUT_SHAPE)
        y = torch.cat(ys)
        return TensorDataset(x, y, torch.full_like(y, t))

    def setup_task(self, task_id: int, cumulative: bool = False) -> None:
        self.task_id = task_id
        self.cumulative = cumulative

    def output_dim(self, task_id: int) -> int:
        if self.scenario == "CIL":
            return self.classes_per_task * task_id
        return self.classes_per_task

    def _train_set(self) -> TensorDataset:
        if not self.cumulative:
            return self.train_sets[self.task_id - 1]
        parts = [self.train_sets[s].tensors for s in range(self.task_id)]
        return TensorDataset(*(torch.cat(p) for p in zip(*parts)))

    def train_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(self.task_id)
        return DataLoader(self._train_set(), batch_size=self.batch_size, shuffle=True, generator=g)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.test_sets[self.task_id - 1], batch_size=self.batch_size)

    def test_dataloader(self) -> list[DataLoader]:
        return [
            DataLoader(self.test_sets[s], batch_size=self.batch_size) for s in range(self.task_id)
        ]


def build_algorithm(name: str, scenario: str, hidden: tuple[int, ...] = (16,), **kwargs):
    """An algorithm from `clarena.cl_algorithms.ALGORITHMS` over a small MLP with SGD."""
    import functools

    from clarena.backbones import MLP
    from clarena.cl_algorithms import ALGORITHMS
    from clarena.heads import make_heads

    backbone = MLP(input_shape=INPUT_SHAPE, hidden_dims=hidden)
    heads = make_heads(scenario, backbone.output_dim)
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    bc_names = ("bc_new_error", "strict_imitation", "focal_distillation")
    if name in bc_names and scenario in ("TIL", "CIL"):
        kwargs.setdefault("buffer_size", 24)
    return ALGORITHMS[name](backbone, heads, optimizer, scenario, **kwargs)


def make_trainer(max_steps: int = 3, callbacks=()):
    """A quiet CPU Lightning trainer for a few steps."""
    from lightning import Trainer

    return Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=list(callbacks),
    )


def make_loop(task_id: int = 1, max_steps: int = 3):
    """The pipeline's loop (`clarena.run.loop.Loop`) on one CPU process for a few steps,
    without a bar, loggers or checkpoints."""
    from clarena.run.loop import Loop, make_fabric
    from clarena.run.loop_settings import LoopSettings

    settings = LoopSettings(
        accelerator="cpu",
        max_epochs=-1,
        max_steps=max_steps,
        enable_progress_bar=False,
        checkpoint_every_minutes=None,
    )
    return Loop(make_fabric(settings), task_id, settings)


def run_tasks(algorithm, stream: SyntheticStream, tasks, max_steps: int = 3):
    """The pipeline's task loop (`clarena.run.task_loop.run_tasks`) over `tasks` with a
    fresh loop per task; returns the `CLResults`."""
    from clarena.run.task_loop import Components
    from clarena.run.task_loop import run_tasks as task_loop

    return task_loop(Components(stream, algorithm), lambda t: make_loop(t, max_steps), tasks)


class _TestLoaders:
    """A datamodule of nothing but the given test loaders."""

    def __init__(self, loaders) -> None:
        self.loaders = loaders

    def setup(self, stage: str) -> None:
        pass

    def teardown(self, stage: str) -> None:
        pass

    def test_dataloader(self):
        return self.loaders


def test_predictions(algorithm, datamodule=None, dataloaders=None):
    """Test `algorithm` (on `datamodule=` or `dataloaders=`) with the pipeline's loop and return
    its `TaskPredictions`."""
    from clarena.run.callbacks import RecordPredictions

    recorder = RecordPredictions()
    source = datamodule if datamodule is not None else _TestLoaders(dataloaders)
    make_loop().test(algorithm, datamodule=source, recorders=[recorder])
    return recorder.outputs


test_predictions.__test__ = False  # a helper, not a test


def predict_batches(algorithm, batches):
    """`test_step` over `(batch, dataloader_idx)` pairs, collected like the pipeline does."""
    from clarena.metrics.predictions import PredictionLog

    log = PredictionLog()
    for i, (batch, loader) in enumerate(batches):
        log.update(algorithm.test_step(batch, i, dataloader_idx=loader))
    return log.compute()

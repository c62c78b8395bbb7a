"""The loss terms of the training step: window means in the logs, a NaN stops the run, no host
read between logging steps."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from cl_synthetic_stream import SyntheticStream
from lightning import Trainer
from lightning.pytorch.loggers import CSVLogger

from clarena.backbones import MLP
from clarena.cl_algorithms import Finetuning
from clarena.cl_algorithms.train_terms import TrainTermsLog
from clarena.core.errors import NonFiniteLossError
from clarena.heads import make_heads


class StepTerm(Finetuning):
    """Finetuning plus a term `extra` equal to the batch index (NaN from batch `nan_at` on)."""

    def __init__(self, nan_at: int | None = None) -> None:
        backbone = MLP(input_shape=(1, 4, 4), hidden_dims=(8,))
        super().__init__(
            backbone,
            make_heads("TIL", backbone.output_dim),
            lambda params: torch.optim.SGD(params, lr=0.0),  # the terms stay as computed
            "TIL",
        )
        self.nan_at = nan_at
        self.batch_idx = 0

    def training_step(self, batch, batch_idx):
        self.batch_idx = batch_idx
        return super().training_step(batch, batch_idx)

    def loss_terms(self, batch):
        terms = super().loss_terms(batch)
        bad = self.nan_at is not None and self.batch_idx >= self.nan_at
        value = float("nan") if bad else float(self.batch_idx)
        terms["extra"] = terms["ce"].new_tensor(value)
        return terms


def _fit(algorithm: StepTerm, steps: int, every: int, logger: object = False) -> Trainer:
    stream = SyntheticStream("TIL", n_per_class=32, batch_size=4)  # 16 batches per epoch
    stream.setup_task(1)
    algorithm.on_task_start(1, stream)
    trainer = Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=logger,
        log_every_n_steps=every,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(algorithm, train_dataloaders=stream.train_dataloader())
    return trainer


def test_terms_are_logged_as_means_of_each_interval(tmp_path: Path) -> None:
    algorithm = StepTerm()
    logger = CSVLogger(tmp_path, name="logs", version="")
    trainer = _fit(algorithm, steps=5, every=2, logger=logger)
    with open(tmp_path / "logs" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    # steps 0-1, 2-3 at the interval (Lightning's logging steps 1 and 3), step 4 at the end of fit
    assert [int(r["step"]) for r in rows] == [1, 3, 4]
    assert [float(r["train/extra"]) for r in rows] == [0.5, 2.5, 4.0]
    assert [int(r["epoch"]) for r in rows] == [0, 0, 0]
    for row in rows:
        total = float(row["train/ce"]) + float(row["train/extra"])
        assert float(row["train/loss"]) == pytest.approx(total, rel=1e-6)
    assert trainer.callback_metrics["train/extra"].item() == 4.0
    last_loss = float(rows[-1]["train/loss"])
    assert trainer.progress_bar_metrics["train/loss"] == pytest.approx(last_loss)


def test_an_epoch_end_closes_the_interval(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="logs", version="")
    _fit(StepTerm(), steps=20, every=10, logger=logger)  # 16 batches per epoch
    with open(tmp_path / "logs" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [9, 15, 19]
    assert [float(r["train/extra"]) for r in rows] == [
        4.5,
        12.5,
        1.5,
    ]  # batch indices 0-9, 10-15, 0-3
    assert [int(r["epoch"]) for r in rows] == [0, 0, 1]


def test_a_nan_term_stops_the_run_at_the_next_logging_step_naming_task_step_and_term() -> None:
    algorithm = StepTerm(nan_at=2)
    with pytest.raises(NonFiniteLossError) as info:
        _fit(algorithm, steps=20, every=5)
    message = str(info.value)
    assert message == (
        "the training loss became nan at task 1, step 3 ('extra' = nan): lower optimizer.lr, or "
        "the factor of that term in cl_algorithm, and check the data for NaN/inf values"
    )
    assert "\n" not in message
    assert algorithm.trainer.global_step == 4  # found in step 5's training_step, before its update


def test_an_infinite_term_in_the_last_steps_of_a_fit_is_caught_at_its_end() -> None:
    algorithm = StepTerm(nan_at=3)
    algorithm.loss_terms = lambda batch: {  # type: ignore[method-assign]
        "ce": algorithm.backbone(batch[0]).sum() * 0 + float("inf")
    }
    with pytest.raises(NonFiniteLossError, match=r"became inf at task 1, step 1 \('ce' = inf\)"):
        _fit(algorithm, steps=3, every=50)


def test_no_host_read_between_logging_steps() -> None:
    """Meta tensors have no data: any read to the host would raise. Only the logging step reads."""
    trainer = SimpleNamespace(
        global_step=0,
        log_every_n_steps=4,
        loggers=[],
        current_epoch=0,
        logged_metrics={},
        callback_metrics={},
        progress_bar_metrics={},
    )
    module = SimpleNamespace(_trainer=trainer, task_id=1)
    log = TrainTermsLog()
    for step in range(3):
        trainer.global_step = step
        terms = {"ce": torch.ones((), device="meta"), "reg": torch.ones((), device="meta")}
        values = torch.stack(list(terms.values()))
        log.record(module, terms, values, values.sum())
    assert len(log._pending) == 3
    trainer.global_step = 3
    with pytest.raises(NotImplementedError):  # the fourth step reads the window (meta: no data)
        log.record(module, terms, values, values.sum())

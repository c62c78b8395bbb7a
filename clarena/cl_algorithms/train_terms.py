"""The training-loss terms of every step: kept on the device, checked and logged every N steps.

`CLAlgorithm.training_step` hands each step's terms to `TrainTermsLog.record`, which only keeps a
reference to the detached tensors: no host synchronisation, no Lightning `self.log` (about 1.5 ms
per call on a CPU) in the step. Every `trainer.log_every_n_steps` optimizer steps (on the steps
where Lightning itself writes its logs, $s + 1 \\equiv 0 \\pmod N$ for step $s$ counted from 0),
`write` reads the recorded steps to the host in one transfer, then

1. raises `NonFiniteLossError` if a term or the loss of one of those steps is NaN or infinite,
   naming the task, the step and the term (so a NaN stops the run at most $N - 1$ steps late,
   whatever callbacks are configured);
2. logs the mean of each term over those steps as `train/<name>` and of the loss as
   `train/loss` to every logger of the trainer (the loop, `clarena.run.loop.Loop`; step and
   `epoch` as Lightning writes them), puts
   them in `trainer.callback_metrics`, and shows `train/loss` in the progress bar.

The same happens at the end of every epoch (before the within-task checkpoint is written, so no
checkpoint holds diverged weights and no interval spans a checkpoint: a resumed run logs the same
means as an uninterrupted one) and at the end of the fit.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor

from clarena.core.errors import NonFiniteLossError

LOSS = "loss"
"""Name of the summed loss among the logged terms (`train/loss`)."""


class TrainTermsLog(pl.Callback):
    """Record each step's loss terms on the device; check and log them every N steps.

    An algorithm returns it from `configure_callbacks`, so every Trainer that fits the algorithm
    runs it, whatever its own callbacks are.
    """

    def __init__(self) -> None:
        self._trainer: pl.Trainer | None = None
        self._every = 50
        self._names: tuple[str, ...] = ()
        self._pending: list[tuple[Tensor, Tensor, int]] = []
        self._written_step = -1
        self._epoch: int | None = None

    def _reset(self, trainer: pl.Trainer | None) -> None:
        self._trainer = trainer
        self._every = max(1, int(getattr(trainer, "log_every_n_steps", 50) or 1))
        self._names = ()
        self._pending = []
        self._written_step = -1
        self._epoch = None

    def record(self, module: Any, terms: dict[str, Tensor], values: Tensor, loss: Tensor) -> None:
        """Keep the step's terms (`values`, stacked in the order of `terms`) and their sum `loss`;
        write the recorded steps when the step closes a logging interval."""
        trainer = getattr(module, "_trainer", None)
        if trainer is None:  # called outside a Trainer: nothing to log to
            return
        if trainer is not self._trainer:
            self._reset(trainer)
        names = tuple(terms)
        if names != self._names:
            self.write(module)
            self._names = names
        assert trainer is not None
        step = int(trainer.global_step)
        self._pending.append((values.detach(), loss.detach(), step))
        if (step + 1) % self._every == 0 and step != self._written_step:
            self._written_step = step
            self.write(module)

    def _rows(self) -> list[list[float]]:
        """The pending steps as host rows `[term_1, ..., term_K, loss]` (one transfer)."""
        values = torch.stack([v for v, _, _ in self._pending])
        losses = torch.stack([loss for _, loss, _ in self._pending]).to(values.dtype)
        return torch.cat([values, losses[:, None]], dim=1).tolist()

    def check(self, module: Any) -> list[list[float]]:
        """Raise `NonFiniteLossError` if a pending step has a NaN or infinite term or loss; return
        the pending steps' rows."""
        if not self._pending:
            return []
        rows = self._rows()
        if all(math.isfinite(math.fsum(column)) for column in zip(*rows)):
            return rows
        for (_, _, step), row in zip(self._pending, rows):
            if all(math.isfinite(v) for v in row):
                continue
            bad = [f"{n!r} = {v}" for n, v in zip(self._names, row) if not math.isfinite(v)]
            cause = ", ".join(bad) if bad else "the sum of the finite terms overflowed"
            task = getattr(module, "task_id", "?")
            self._pending = []
            raise NonFiniteLossError(
                f"the training loss became {row[-1]} at task {task}, step {step + 1} ({cause}): "
                "lower optimizer.lr, or the factor of that term in cl_algorithm, and check the "
                "data for NaN/inf values"
            )
        return rows  # pragma: no cover (a non-finite column sum has a non-finite value)

    def write(self, module: Any) -> None:
        """Check the pending steps, then log their means and forget them."""
        if not self._pending:
            return
        rows = self.check(module)
        step = self._pending[-1][2]
        self._pending = []
        means = [math.fsum(column) / len(rows) for column in zip(*rows)]
        names = [f"train/{n}" for n in (*self._names, LOSS)]
        metrics = dict(zip(names, means))
        trainer = self._trainer
        if trainer is None:
            return
        for logger in trainer.loggers:
            epoch = trainer.current_epoch if self._epoch is None else self._epoch
            logger.log_metrics({**metrics, "epoch": epoch}, step=step)
            logger.save()
        trainer.logged_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})
        trainer.progress_bar_metrics[f"train/{LOSS}"] = means[-1]

    def loop_state(self) -> dict[str, Any]:
        """The steps recorded since the last write, for the loop's within-task checkpoint (which
        may fall inside a logging interval); weights-only safe: CPU tensors, numbers, strings."""
        return {
            "names": list(self._names),
            "pending": [[v.cpu(), loss.cpu(), step] for v, loss, step in self._pending],
            "written_step": self._written_step,
            "epoch": self._epoch,
        }

    def load_loop_state(self, state: dict[str, Any], device: torch.device) -> None:
        """Restore `loop_state()` (after `_reset` by the fit that resumes)."""
        self._names = tuple(state["names"])
        self._pending = [(v.to(device), loss.to(device), int(s)) for v, loss, s in state["pending"]]
        self._written_step = int(state["written_step"])
        self._epoch = state["epoch"]

    # ------------------------------------------------------------------ Lightning hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start with nothing pending and the Trainer's logging interval."""
        self._reset(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Remember the epoch (the end-of-fit write logs the epoch of its steps)."""
        self._epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Check and write the epoch's last steps (before the epoch's checkpoint is written, so no
        interval spans a checkpoint and a resumed run logs the same means)."""
        self.write(pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the steps left since the last interval; let go of the Trainer."""
        self.write(pl_module)
        self._reset(None)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Forget the pending steps of a failed fit and the Trainer."""
        self._reset(None)

"""Lightning callbacks of the task loop.

- `NonFiniteLossGuard` stops a run with a one-line message when the training loss is NaN or
  infinite, checking every step (a host synchronisation per step; `callbacks=debug` uses it).
  Every algorithm's training step already checks its loss terms every `log_every_n_steps` steps
  without one (`clarena.cl_algorithms.train_terms`), so the default callbacks leave it out.
- `ResumeStateCallback` stores the task number, the random-number states and the algorithm's own
  state outside its modules (`extra_cl_state()`: a replay buffer filled during the task, ...) in
  Lightning's within-task checkpoints and restores them when a task resumes from one, so that a run
  killed in the middle of a task ends with the same results as an uninterrupted run. The pipeline
  adds it.
- `TaskProgressBar` is Lightning's rich progress bar, labelled with the task and the budget,
  counted from 1: "task 3/5 · epoch 2/3", or "task 3/5 · epoch 2 · 2000 steps" under a step
  budget (Lightning's own label reads "Epoch 1/2" for the second of three epochs, and
  "Epoch n/-2" under a step budget). The pipeline adds it
  when the trainer shows a progress bar and no other bar is configured.
- `KillSwitch` is a testing aid: with the environment variable `CLARENA_KILL_AT` set, the process
  sends itself SIGKILL at a chosen point (`task:<t>:step:<s>`: after optimizer step `s` of task `t`;
  `after_task:<t>`: right after the checkpoint of task `t` is written). The resume tests use it to
  kill a run at an exact point; it does nothing when the variable is unset. Under DDP every rank
  kills itself there, or only rank `r` with `CLARENA_KILL_RANK=r`.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import RichProgressBar

from clarena import distributed
from clarena.metrics.predictions import PredictionLog, TaskPredictions
from clarena.metrics.results import CLResults
from clarena.pipelines.checkpoint import capture_rng, restore_rng
from clarena.pipelines.errors import NonFiniteLossError
from clarena.pipelines.progress_bar import task_label

KILL_ENV = "CLARENA_KILL_AT"
"""Environment variable of the `KillSwitch` testing aid."""

KILL_RANK_ENV = "CLARENA_KILL_RANK"
"""With `KILL_ENV`: only the process of this global rank kills itself."""


def _loss_of(outputs: Any) -> torch.Tensor | None:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


class TaskProgressBar(RichProgressBar):
    """The rich progress bar, with an epoch label that reads well under a step budget, redrawn
    every `refresh_every` training batches (and at the last batch of an epoch) rather than after
    every batch: a redraw costs about 0.1 ms of CPU, as much as a small model's whole step.

    Args:
        refresh_every: Training batches between two updates of the bar.
        task_id: The task being trained (shown as "task t/T").
        num_tasks: The number of tasks of the run.
        **kwargs: As Lightning's `RichProgressBar`.
    """

    def __init__(
        self,
        refresh_every: int = 10,
        task_id: int | None = None,
        num_tasks: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.task_id, self.num_tasks = task_id, num_tasks
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
        self.refresh_every = refresh_every

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Update the bar every `refresh_every` batches and at the end of the epoch."""
        done = batch_idx + 1
        if done % self.refresh_every and done != self.total_train_batches:
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def _get_train_description(self, current_epoch: int) -> str:
        max_steps = getattr(self.trainer, "max_steps", -1)
        label = task_label(
            self.task_id, self.num_tasks, current_epoch, self.trainer.max_epochs, max_steps
        )
        return f"{label:{len(self.validation_description)}}"


class NonFiniteLossGuard(pl.Callback):
    """Raise `NonFiniteLossError` when the training loss stops being finite.

    Checking reads the loss on the host (one synchronisation per checked step).

    Args:
        check_every_n_steps: Check every n-th training batch (1: every batch).
    """

    def __init__(self, check_every_n_steps: int = 1) -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, got {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Check the loss of the batch just trained."""
        if batch_idx % self.check_every_n_steps:
            return
        loss = _loss_of(outputs)
        if loss is None or bool(torch.isfinite(loss.detach()).all()):
            return
        task = getattr(pl_module, "task_id", None)
        where = f"task {task}, " if task is not None else ""
        raise NonFiniteLossError(
            f"the training loss became {loss.detach().float().item()} at {where}step "
            f"{trainer.global_step} (batch {batch_idx}): lower optimizer.lr, check the "
            "algorithm's loss weights and the data for NaN/inf values"
        )


def settle_epoch_end(checkpoint: dict[str, Any]) -> None:
    """Rewrite the loop counters of an end-of-epoch checkpoint to a clean epoch boundary.

    Lightning saves the within-task checkpoint in `on_train_epoch_end`, before it counts the
    epoch as completed and with the batch counters of the epoch still set. Under an epoch budget it
    finishes that bookkeeping on restore; under a step budget it treats the run as restarting
    inside the epoch and replays a different number of batches (a different `global_step` and data
    order than the uninterrupted run). Here the finished epoch is counted as completed and the
    per-epoch counters are zeroed, so both budgets restore to "epoch e done, epoch e+1 next", which
    is exactly where the uninterrupted run stands at that moment.
    """
    loops = checkpoint.get("loops", {}).get("fit_loop")
    if not loops or not loops["epoch_loop.batch_progress"].get("is_last_batch"):
        return  # not saved at the end of an epoch: Lightning's own restore applies
    epochs = loops["epoch_progress"]
    for part in ("total", "current"):
        done = epochs[part]["processed"]
        epochs[part].update(ready=done, started=done, completed=done)
    batches = loops["epoch_loop.batch_progress"]
    batches["current"] = dict.fromkeys(batches["current"], 0)
    batches["is_last_batch"] = False
    schedulers = loops["epoch_loop.scheduler_progress"]
    schedulers["current"] = dict.fromkeys(schedulers["current"], 0)
    optim = loops["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]
    for tracker in optim.values():
        tracker["current"] = dict.fromkeys(tracker["current"], 0)


class ResumeStateCallback(pl.Callback):
    """Save what Lightning's checkpoints lack for an exact resume; restore it on resume.

    Lightning checkpoints the modules, the optimizer and the loop counters; this adds the task
    number, the random-number states and the algorithm's `extra_cl_state()`.

    Args:
        task_id: The task being trained.
        config_digest: SHA-256 of the run's `config.yaml` (a resume checks it).
    """

    def __init__(self, task_id: int, config_digest: str = "") -> None:
        self.task_id = task_id
        self.config_digest = config_digest
        self._pending: dict[str, Any] | None = None
        self._module: pl.LightningModule | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Remember the algorithm whose state is saved."""
        self._module = pl_module

    def state_dict(self) -> dict[str, Any]:
        """Stored in the checkpoint under this callback's key."""
        extra_state = getattr(self._module, "extra_cl_state", None)
        return {
            "task_id": self.task_id,
            "config_digest": self.config_digest,
            "rng": capture_rng(),
            "extra_cl_state": extra_state() if extra_state is not None else {},
        }

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Record the loop position as "epoch finished, next epoch not started"."""
        settle_epoch_end(checkpoint)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the states to restore at the start of the next training epoch."""
        if int(state_dict["task_id"]) != self.task_id:
            raise ValueError(
                f"the within-task checkpoint belongs to task {state_dict['task_id']}, not task "
                f"{self.task_id}; delete checkpoints/within_task/ and resume again"
            )
        self._pending = state_dict

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Restore the saved states just before the resumed epoch draws its first random number."""
        if self._pending is None:
            return
        extra = self._pending.get("extra_cl_state")
        if extra and hasattr(pl_module, "load_extra_cl_state"):
            pl_module.load_extra_cl_state(extra)  # type: ignore[operator]
        restore_rng(self._pending["rng"])
        self._pending = None


def kill_point() -> tuple[str, int, int] | None:
    """The point `CLARENA_KILL_AT` names: `("after_task", t, 0)`, `("step", t, s)`, or `None`."""
    value = os.environ.get(KILL_ENV, "").strip()
    if not value:
        return None
    parts = value.split(":")
    if len(parts) == 2 and parts[0] == "after_task":
        return ("after_task", int(parts[1]), 0)
    if len(parts) == 4 and parts[0] == "task" and parts[2] == "step":
        return ("step", int(parts[1]), int(parts[3]))
    raise ValueError(f"{KILL_ENV}={value!r}: use after_task:<t> or task:<t>:step:<s>")


def kill_now() -> None:
    """Send SIGKILL to this process (no clean-up of any kind runs)."""
    os.kill(os.getpid(), signal.SIGKILL)


class KillSwitch(pl.Callback):
    """Testing aid: SIGKILL this process after optimizer step `step` of task `task_id`."""

    def __init__(self, task_id: int, step: int) -> None:
        self.task_id, self.step = task_id, step

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Kill the process once the chosen step is done."""
        only = os.environ.get(KILL_RANK_ENV, "")
        if only and int(only) != trainer.global_rank:
            return
        if trainer.global_step >= self.step:
            kill_now()


class RecordPredictions(pl.Callback):
    """Collect what `test_step` returns into a `PredictionLog` and, at the end of the test, add
    each test task's predictions to `results` as those of the model after task `after_task`.

    Under DDP every rank tests its shard; the shards are gathered back into the dataset's order
    (`clarena.distributed.gather_sharded`, a collective every rank runs), so every rank adds
    exactly what one process would. `outputs` keeps the last test's predictions.
    """

    def __init__(self, results: CLResults | None = None, after_task: int = 0) -> None:
        self.results = results
        self.after_task = after_task
        self.predictions = PredictionLog()
        self.outputs: TaskPredictions = {}

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.predictions.reset()

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.predictions.update(outputs)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.outputs = {
            t: {k: distributed.gather_sharded(v) for k, v in out.items()}
            for t, out in self.predictions.compute().items()
        }
        accuracies = {
            f"test/acc/task_{t}": float((out["preds"] == out["targets"]).float().mean())
            for t, out in self.outputs.items()
            if out["targets"].numel()
        }
        for logger in getattr(trainer, "loggers", None) or () if accuracies else ():
            logger.log_metrics(accuracies, step=trainer.global_step)
        if self.results is None:
            return
        task_aware = getattr(pl_module, "scenario", None) == "CIL"
        for test_task, out in self.outputs.items():
            self.results.add(
                after_task=self.after_task,
                test_task=test_task,
                preds=out["preds"],
                targets=out["targets"],
                preds_task_aware=out["preds_task_aware"] if task_aware else None,
            )

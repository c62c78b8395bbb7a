"""The pipeline's callbacks of the loop, and the kill switch of the resume tests.

- `NonFiniteLossGuard` stops a run with a one-line message when the training loss is NaN or
  infinite, checking every step (a host synchronisation per step; `callbacks=debug` uses it).
  Every algorithm's training step already checks its loss terms every `log_every_n_steps` steps
  without one (`clarena.cl_algorithms.train_terms`), so the default callbacks leave it out. It is a
  callback of the loop's protocol (`clarena.run.loop`: `on_loop_step_end`), like a user's.
- `RecordPredictions` collects what `test_step` returns during the loop's test and adds it to the
  run's `CLResults` (the loop calls it directly).
- The kill switch is a testing aid: with the environment variable `CLARENA_KILL_AT` set, the
  process sends itself SIGKILL at a chosen point (`task:<t>:step:<s>`: after optimizer step `s` of
  task `t`; `after_task:<t>`: right after the checkpoint of task `t` is written). The resume tests
  use it to kill a run at an exact point; it does nothing when the variable is unset. Under DDP
  every rank kills itself there, or only rank `r` with `CLARENA_KILL_RANK=r`.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import torch

from clarena import distributed
from clarena.core.errors import NonFiniteLossError
from clarena.metrics.predictions import PredictionLog, TaskPredictions
from clarena.metrics.results import CLResults

KILL_ENV = "CLARENA_KILL_AT"
"""Environment variable of the kill switch."""

KILL_RANK_ENV = "CLARENA_KILL_RANK"
"""With `KILL_ENV`: only the process of this global rank kills itself."""


def _loss_of(outputs: Any) -> torch.Tensor | None:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict) and isinstance(outputs.get("loss"), torch.Tensor):
        return outputs["loss"]
    return None


class NonFiniteLossGuard:
    """Raise `NonFiniteLossError` when the training loss stops being finite.

    Checking reads the loss on the host (one synchronisation per checked step).

    Args:
        check_every_n_steps: Check every n-th training batch (1: every batch).
    """

    def __init__(self, check_every_n_steps: int = 1) -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, got {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps

    def on_loop_step_end(
        self, loop: Any, module: Any, loss: Any, batch: Any, batch_idx: int
    ) -> None:
        """Check the loss of the batch just trained."""
        if batch_idx % self.check_every_n_steps:
            return
        value = _loss_of(loss)
        if value is None or bool(torch.isfinite(value.detach()).all()):
            return
        task = getattr(module, "task_id", None)
        where = f"task {task}, " if task is not None else ""
        raise NonFiniteLossError(
            f"the training loss became {value.detach().float().item()} at {where}step "
            f"{loop.global_step} (batch {batch_idx}): lower optimizer.lr, check the "
            "algorithm's loss weights and the data for NaN/inf values"
        )


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


def kills_rank(rank: int) -> bool:
    """Whether the kill switch applies to the process of global rank `rank`."""
    only = os.environ.get(KILL_RANK_ENV, "")
    return not only or int(only) == rank


def kill_now() -> None:
    """Send SIGKILL to this process (no clean-up of any kind runs)."""
    os.kill(os.getpid(), signal.SIGKILL)


class RecordPredictions:
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

    def on_test_epoch_start(self, loop: Any, module: Any) -> None:
        self.predictions.reset()

    def on_test_batch_end(
        self,
        loop: Any,
        module: Any,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.predictions.update(outputs)

    def on_test_epoch_end(self, loop: Any, module: Any) -> None:
        self.outputs = {
            t: {k: distributed.gather_sharded(v) for k, v in out.items()}
            for t, out in self.predictions.compute().items()
        }
        accuracies = {
            f"test/acc/task_{t}": float((out["preds"] == out["targets"]).float().mean())
            for t, out in self.outputs.items()
            if out["targets"].numel()
        }
        for logger in getattr(loop, "loggers", None) or () if accuracies else ():
            logger.log_metrics(accuracies, step=loop.global_step)
        if self.results is None:
            return
        task_aware = getattr(module, "scenario", None) == "CIL"
        for test_task, out in self.outputs.items():
            self.results.add(
                after_task=self.after_task,
                test_task=test_task,
                preds=out["preds"],
                targets=out["targets"],
                preds_task_aware=out["preds_task_aware"] if task_aware else None,
            )

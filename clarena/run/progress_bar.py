"""The progress bar of the loop (`clarena.run.loop`), drawn on rank zero.

`task_label` is the text left of the bar: "task 3/5 · epoch 2/3", or "task 3/5 · epoch 2 ·
2000 steps" under a step budget (tasks and epochs counted from 1). `ProgressBar` draws it with
rich, redrawn at most every `refresh_seconds` (and at the end of an epoch), never from a
background thread: a redraw costs about 0.5 ms of CPU, as much as a small model's step, so a bar
redrawn every step would double the run.
"""

from __future__ import annotations

import time
from typing import Any


def task_label(
    task_id: int | None,
    num_tasks: int | None,
    epoch: int,
    max_epochs: int | None,
    max_steps: int | None,
) -> str:
    """ "task t/T · epoch e/E" (with " · N steps" under a step budget); `epoch` counts from 0."""
    parts = []
    if task_id is not None:
        parts.append(f"task {task_id}" + (f"/{num_tasks}" if num_tasks else ""))
    label = f"epoch {epoch + 1}"
    parts.append(label + (f"/{max_epochs}" if max_epochs is not None and max_epochs > 0 else ""))
    if max_steps is not None and max_steps > 0:
        parts.append(f"{max_steps} steps")
    return " · ".join(parts)


class ProgressBar:
    """A rich bar over the batches of an epoch, with the last logged `train/loss`.

    Args:
        task_id: The task being trained.
        num_tasks: The run's number of tasks.
        max_epochs: The epoch budget (-1 or None: none).
        max_steps: The step budget (-1: none).
        refresh_seconds: Least time between two redraws.
    """

    def __init__(
        self,
        task_id: int,
        num_tasks: int | None,
        max_epochs: int | None,
        max_steps: int,
        refresh_seconds: float = 0.1,
    ) -> None:
        if not refresh_seconds >= 0:
            raise ValueError(f"refresh_seconds must be >= 0, got {refresh_seconds}")
        self.task_id, self.num_tasks = task_id, num_tasks
        self.max_epochs, self.max_steps = max_epochs, max_steps
        self.refresh_seconds = refresh_seconds
        self.redraws = 0
        """How many times the bar was drawn (for tests)."""
        self._last = -float("inf")
        self._progress: Any = None
        self._bar: Any = None

    def start(self) -> None:
        """Show the bar (rich is imported here, only when a bar is drawn)."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[loss]}"),
            auto_refresh=False,
        )
        self._progress.start()

    def epoch_start(self, epoch: int, total: int) -> None:
        """Begin the bar of epoch `epoch` (from 0) over `total` batches."""
        if self._progress is None:
            return
        description = task_label(
            self.task_id, self.num_tasks, epoch, self.max_epochs, self.max_steps
        )
        if self._bar is not None:
            self._progress.remove_task(self._bar)
        self._bar = self._progress.add_task(description, total=total, loss="")
        self._progress.refresh()

    def update(self, done: int, loss: float | None, force: bool = False) -> None:
        """`done` batches of the epoch are trained; redraw if `refresh_seconds` have passed since
        the last redraw (or with `force`)."""
        if self._progress is None or self._bar is None:
            return
        now = time.monotonic()
        if now - self._last < self.refresh_seconds and not force:
            return
        self._last = now
        self.redraws += 1
        loss_text = "" if loss is None else f"train/loss: {loss:.3g}"
        self._progress.update(self._bar, completed=done, loss=loss_text)
        self._progress.refresh()

    def stop(self) -> None:
        """Leave the last state of the bar on the screen."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._bar = None

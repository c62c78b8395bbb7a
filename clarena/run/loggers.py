"""Experiment loggers across the tasks of a run: one step axis, a `task` field, resumable CSV.

Every task has its own loop (`clarena.run.loop`), whose step restarts at 0 at each task.
The task loop wraps each configured logger with `TaskSteps`: every logged row gets a `task` field
and a step that runs on across tasks (the steps of the finished tasks plus the step within the
task), so the curves of a run form one timeline and can be split by task.

`CSVLogger` is Lightning's CSV logger, except that it keeps the rows already in `metrics.csv` (on
resume Lightning's own logger deletes them) and, when the run resumes inside a task, drops the rows
logged after the checkpoint it resumes from (they are logged again as the task is replayed).
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import Logger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from clarena.core.files import atomic_write_text

TASK_KEY = "task"
"""The field naming the task of each logged row."""


class TaskSteps:
    """Tags the rows of `loggers` with the current task and a step that runs across tasks."""

    def __init__(self, loggers: list[Logger]) -> None:
        self.task = 0
        self.offset = 0
        """Optimizer steps of the finished tasks (added to Lightning's per-task step)."""
        for logger in loggers:
            self._wrap(logger)

    def _wrap(self, logger: Logger) -> None:
        original = logger.log_metrics

        def log_metrics(metrics: dict[str, Any], step: int | None = None) -> None:
            tagged = {**metrics, TASK_KEY: self.task}
            original(tagged, None if step is None else step + self.offset)

        logger.log_metrics = log_metrics  # type: ignore[method-assign]


class _KeepingWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to an existing `metrics.csv` instead of deleting it."""

    def __init__(self, log_dir: str, keep_until: tuple[int, int, int] | None) -> None:
        self.keep_until = keep_until
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = list(reader)
        if self.keep_until is not None:
            rows = [r for r in rows if _kept(r, *self.keep_until)]
            text = _csv_text(header, rows)
            atomic_write_text(self.metrics_file_path, text)
        self.metrics_keys = header


def _kept(row: dict[str, str], task: int, start_step: int, steps_done: int) -> bool:
    """Whether a row logged before a resume stays: the rows of the tasks before `task` (which
    began at run step `start_step`), and those of `task` from its first `steps_done` steps (a
    row's step counts from 0, so those have steps below `start_step + steps_done`)."""
    if not row.get("step"):
        return True
    step = int(row["step"])
    row_task = int(row[TASK_KEY]) if row.get(TASK_KEY) else None
    if row_task is not None and row_task < task:
        return step <= start_step
    return step < start_step + steps_done


def _csv_text(header: list[str], rows: list[dict[str, str]]) -> str:
    import io

    buffer = io.StringIO()
    # the line ends of Lightning's writer (csv's default "\r\n"): a resumed run's file has the
    # bytes of an uninterrupted run's
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class CSVLogger(LightningCSVLogger):
    """Lightning's CSV logger that keeps the rows of earlier tasks and of a resumed run.

    Args:
        *args: As Lightning's `CSVLogger`.
        **kwargs: As Lightning's `CSVLogger`.
    """

    keep_until: tuple[int, int, int] | None = None
    """On resume, `(task, start_step, steps_done)`: the run continues task `task`, which began at
    run step `start_step`, after `steps_done` of its steps; the rows logged after that point are
    dropped (they are logged again). Set by the task loop before anything is logged."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer (created on first use, keeping the file's existing rows)."""
        if not isinstance(self._experiment, ExperimentWriter):
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self.keep_until)
        return self._experiment

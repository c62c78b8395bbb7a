"""Experiment loggers across the tasks of a run: one step axis, a `task` field, resumable CSV.

Every task has its own Lightning Trainer, so Lightning's step restarts at 0 at each task. The task
loop wraps each configured logger with `TaskSteps`: every logged row gets a `task` field and a step
that runs on across tasks (the steps of the finished tasks plus the step within the task), so the
curves of a run form one timeline and can be split by task.

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

    def __init__(self, log_dir: str, keep_until: int | None) -> None:
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
            rows = [r for r in rows if not r.get("step") or int(r["step"]) <= self.keep_until]
            text = _csv_text(header, rows)
            atomic_write_text(self.metrics_file_path, text)
        self.metrics_keys = header


def _csv_text(header: list[str], rows: list[dict[str, str]]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class CSVLogger(LightningCSVLogger):
    """Lightning's CSV logger that keeps the rows of earlier tasks and of a resumed run.

    Args:
        *args: As Lightning's `CSVLogger`.
        **kwargs: As Lightning's `CSVLogger`.
    """

    keep_until: int | None = None
    """On resume: drop rows with a step above this one (set by the task loop before logging)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer (created on first use, keeping the file's existing rows)."""
        if not isinstance(self._experiment, ExperimentWriter):
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingWriter(self.log_dir, self.keep_until)
        return self._experiment

"""The summary table printed at the end of `clarena train` and `clarena eval`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from clarena.metrics import CLResults


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100.0 * value:.2f}"


def _pct_unit(value: float | None) -> str:
    """`_pct` with its `%`, or `n/a` when the metric is not defined yet (one task)."""
    text = _pct(value)
    return "n/a" if text == "-" else f"{text}%"


def accuracy_table(results: CLResults, title: str, task_aware: bool = False) -> Table:
    """The accuracy matrix (percent) with the average accuracy of every row."""
    matrix = results.accuracy_matrix(task_aware=task_aware)
    table = Table(title=title, title_justify="left")
    table.add_column("after task", justify="right")
    for j in range(matrix.shape[1]):
        table.add_column(f"task {j + 1}", justify="right")
    table.add_column("average", justify="right", style="bold")
    for t, row in enumerate(matrix, start=1):
        seen = row[:t]
        average = float(np.mean(seen)) if np.isfinite(seen).all() else float("nan")
        table.add_row(str(t), *(_pct(float(v)) for v in row), _pct(average))
    return table


def print_summary(
    results: CLResults, run_dir: Path, console: Console | None = None, heading: str = "accuracy (%)"
) -> None:
    """Print the accuracy matrix, average accuracy, forgetting and where the results are."""
    console = console or Console()
    console.print(accuracy_table(results, f"{heading}, {results.scenario}"))
    aware = results.has_task_aware
    if aware:
        console.print(accuracy_table(results, f"{heading}, task-aware", task_aware=True))
    summary = results.summary()
    line = (
        f"average accuracy [bold]{_pct_unit(summary['average_accuracy'])}[/bold]   "
        f"forgetting {_pct_unit(summary['forgetting'])}   "
        f"backward transfer {_pct_unit(summary['backward_transfer'])}"
    )
    console.print(line)
    if aware:
        aware_summary = results.summary(task_aware=True)
        console.print(
            f"task-aware: average accuracy {_pct_unit(aware_summary['average_accuracy'])}   "
            f"forgetting {_pct_unit(aware_summary['forgetting'])}"
        )
    console.print(f"results: {run_dir}")

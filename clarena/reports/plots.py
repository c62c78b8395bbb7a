"""PNG plots of one run's results, drawn with matplotlib's Agg canvas.

Each function takes plain numbers (as stored in `metrics.json`) and returns the PNG bytes, which
`clarena.reports.writers` writes atomically and `clarena report` embeds. The figures are built with
`matplotlib.figure.Figure` and the non-interactive Agg canvas directly, so drawing never needs a
display and never changes the global pyplot backend of the caller. Accuracies are plotted in
percent. Each plot takes a `subtitle`, the run's identity (`clarena.metrics.provenance`), shown
under its title so that a PNG on its own still says which run it shows.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

#: Dots per inch of every PNG.
DPI = 110


def png_bytes(fig: Figure) -> bytes:
    """Render `fig` on an Agg canvas and return the PNG bytes."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def set_titles(ax: Any, title: str, subtitle: str = "") -> None:
    """The plot's title, with `subtitle` (the run's identity) in smaller type on a second line."""
    ax.set_title(title, fontsize=11, pad=18 if subtitle else 6)
    if subtitle:
        ax.text(
            0.5,
            1.02,
            subtitle,
            transform=ax.transAxes,
            ha="center",
            va="bottom",
            fontsize=8,
            color="#444444",
        )


def percent(value: Any) -> float:
    """A fraction as a percentage; NaN for `None`, NaN or anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return math.nan
    return float(value) * 100


def accuracy_matrix_png(
    matrix: Sequence[Sequence[float | None]], title: str, subtitle: str = ""
) -> bytes:
    """Heat map of $a_{t,j}$ in percent, each measured cell annotated, blank where not measured."""
    rows = len(matrix)
    cols = max((len(r) for r in matrix), default=0)
    grid = [[percent(v) for v in list(r) + [None] * (cols - len(r))] for r in matrix]
    side = max(3.2, 0.55 * max(rows, cols) + 2.2)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="equal")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    colorbar.set_label("accuracy (%)")
    if max(rows, cols) <= 12:
        for t in range(rows):
            for j in range(cols):
                if math.isfinite(grid[t][j]):
                    color = "black" if grid[t][j] > 60 else "white"
                    ax.text(j, t, f"{grid[t][j]:.1f}", ha="center", va="center", color=color)
    ax.set_xticks(range(cols), [str(j + 1) for j in range(cols)])
    ax.set_yticks(range(rows), [str(t + 1) for t in range(rows)])
    ax.set_xlabel("test on task j")
    ax.set_ylabel("after training task t")
    set_titles(ax, title, subtitle)
    return png_bytes(fig)


def average_accuracy_png(
    per_task: Sequence[float | None],
    per_task_task_aware: Sequence[float | None] | None = None,
    subtitle: str = "",
) -> bytes:
    """Average accuracy over the tasks seen so far, after each task (percent)."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    tasks = list(range(1, len(per_task) + 1))

    def series(values: Sequence[float | None]) -> list[float]:
        return [percent(v) for v in values]

    label = "task-agnostic" if per_task_task_aware is not None else "average accuracy"
    ax.plot(tasks, series(per_task), marker="o", label=label)
    if per_task_task_aware is not None:
        ax.plot(tasks, series(per_task_task_aware), marker="s", linestyle="--", label="task-aware")
    ax.set_xticks(tasks)
    ax.set_ylim(0, 104)
    ax.set_xlabel("after training task t")
    ax.set_ylabel("average accuracy on tasks 1..t (%)")
    set_titles(ax, "Average accuracy after each task", subtitle)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return png_bytes(fig)


def flips_png(pooled_rows: Sequence[dict[str, Any]], num_tasks: int, subtitle: str = "") -> bytes:
    """Negative and positive flips of each update (model $t-1$ to $t$), on the earlier tasks."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    by_task = {int(r["new_after_task"]): r for r in pooled_rows}
    tasks = list(range(2, num_tasks + 1))
    if tasks and by_task:
        negative = [by_task[t]["negative_flips"] if t in by_task else 0 for t in tasks]
        positive = [by_task[t]["positive_flips"] if t in by_task else 0 for t in tasks]
        width = 0.38
        bars = ax.bar(
            [t - width / 2 for t in tasks], negative, width, label="negative flips (regress)"
        )
        ax.bar_label(bars, padding=2)
        bars = ax.bar(
            [t + width / 2 for t in tasks], positive, width, label="positive flips (progress)"
        )
        ax.bar_label(bars, padding=2)
        ax.set_xticks(tasks)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, max([*negative, *positive, 1]) * 1.45)  # room for the legend
        ax.legend(loc="upper left")
    else:
        ax.text(0.5, 0.5, "no update yet: flips need two tasks", ha="center", va="center")
        ax.set_xticks([])
    ax.set_xlabel("after training task t (model t-1 → t)")
    ax.set_ylabel("test points of tasks 1..t-1 (count)")
    set_titles(ax, "Prediction flips at each update", subtitle)
    ax.grid(alpha=0.3, axis="y")
    return png_bytes(fig)


def training_curves_png(rows: Sequence[dict[str, str]], subtitle: str = "") -> bytes | None:
    """Each training loss term (`train/<name>` columns of the CSV log) against the run's step,
    one colour per task; `None` when the log holds no training rows.

    Args:
        rows: The rows of `lightning_logs/metrics.csv` (strings, as `csv.DictReader` gives them).
        subtitle: The run's identity, under the title.
    """
    terms = sorted({k for row in rows for k, v in row.items() if k.startswith("train/") and v})
    if not terms:
        return None
    fig = Figure(figsize=(5.5, 1.2 + 2.2 * len(terms)))
    for i, term in enumerate(terms):
        ax = fig.add_subplot(len(terms), 1, i + 1)
        by_task: dict[str, tuple[list[float], list[float]]] = {}
        for row in rows:
            value, step = row.get(term), row.get("step")
            if not value or not step:
                continue
            try:
                point = (float(step), float(value))
            except ValueError:  # a hand-edited log: skip what is not a number
                continue
            steps, values = by_task.setdefault(row.get("task") or "?", ([], []))
            steps.append(point[0])
            values.append(point[1])
        for task, (steps, values) in sorted(by_task.items(), key=lambda kv: kv[0]):
            ax.plot(steps, values, marker=".", linewidth=1, label=f"task {task}")
        ax.set_ylabel(term.removeprefix("train/"))
        ax.grid(alpha=0.3)
        if i == 0:
            set_titles(ax, "Training loss terms (mean of each logging interval)", subtitle)
            ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel("optimizer step of the run (tasks one after another)")
    return png_bytes(fig)

"""The page of one run: `report.html`, self-contained, with the run's plots embedded.

`render_run` builds the page from the run's `results/metrics.json` and returns it with the PNGs it
had to draw (those missing from the results folder, and the training curves from the CSV log)
without writing anything; `report_run` writes them and the page (`clarena report <run>`). A study
(`clarena.reports.study_files`) writes the pages it needs into its own folder instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Name of the page written by `clarena report`.
PAGE_NAME = "report.html"

TRAINING_CURVES = "training_curves.png"
"""The plot of the training loss terms per task, drawn from the run's CSV log."""


def results_dir_of(path: Path) -> Path | None:
    """`path` when it holds `metrics.json`, `path/results` when that does, else None."""
    if (path / "metrics.json").is_file():
        return path
    if (path / "results" / "metrics.json").is_file():
        return path / "results"
    return None


def _training_curves(results_dir: Path, data: dict[str, Any]) -> bytes | None:
    """The training curves of the run whose results are in `results_dir` (None without a log)."""
    import csv

    from clarena.metrics.provenance import identity_line, run_identity
    from clarena.reports.plots import training_curves_png

    log = results_dir.parent / "lightning_logs" / "metrics.csv"
    if results_dir.name != "results" or not log.is_file():
        return None
    with open(log, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    identity = data.get("run")
    if not isinstance(identity, dict):
        identity = run_identity(data.get("config"))
    return training_curves_png(rows, identity_line(identity, data.get("scenario")))


def render_run(results_dir: Path, output: Path | None = None) -> tuple[str, dict[str, bytes]]:
    """The page of the run whose `metrics.json` is in `results_dir`, and the PNGs drawn for it
    (name → bytes; a PNG found in `output` or `results_dir` is read, not drawn). Writes nothing."""
    from clarena.metrics.sweep import load_metrics
    from clarena.reports.html import run_page
    from clarena.reports.writers import json_safe, plot_pngs

    data = json_safe(load_metrics(results_dir))
    names = ["accuracy_matrix.png", "average_accuracy.png", "flips.png"]
    if data.get("accuracy_matrix_task_aware") is not None:
        names.append("accuracy_matrix_task_aware.png")
    folders = [f for f in (output, results_dir) if f is not None]
    pngs: dict[str, bytes] = {}
    drawn: dict[str, bytes] = {}
    plotted: dict[str, bytes] | None = None
    for name in names:
        existing = next((f / name for f in folders if (f / name).is_file()), None)
        if existing is not None:
            pngs[name] = existing.read_bytes()
            continue
        plotted = plotted or plot_pngs(data)
        pngs[name] = drawn[name] = plotted[name]
    curves = _training_curves(results_dir, data)
    if curves is not None:
        pngs[TRAINING_CURVES] = drawn[TRAINING_CURVES] = curves
    run_name = results_dir.parent.name if results_dir.name == "results" else results_dir.name
    return run_page(data, pngs, f"clarena run report: {run_name}"), drawn


def report_run(results_dir: Path, output: Path | None = None) -> Path:
    """Write the page of one run and the PNGs it drew into `output` (default: `results_dir`);
    return the page's path."""
    from clarena.core.files import atomic_write_bytes, atomic_write_text

    out_dir = output or results_dir
    page, drawn = render_run(results_dir, out_dir)
    for name, png in drawn.items():
        atomic_write_bytes(out_dir / name, png)
    return atomic_write_text(out_dir / PAGE_NAME, page)

"""`clarena report` over a folder of runs: the study table as CSV, Markdown and an HTML page.

The folder may hold sweeps (`0/`, `1/`, …), separate runs, or both, at any depth: every
`results/metrics.json` under it is a run (report folders are not searched). The runs are grouped
by method and scenario (`clarena.metrics.study`), and written to the output folder as
`study.csv` (one row per cell, fractions at full precision), `study.md` and `report.html` (one
method × scenario table per metric, mean ± standard error in percent or points, with the number
of seeds; then every cell's runs linked to their own pages). A run without its page
(`results/report.html`) gets one first (`clarena report <run>`).
"""

from __future__ import annotations

import csv
import html
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from clarena.metrics.study import (
    METRICS,
    Estimate,
    StudyCell,
    StudyRun,
    aggregate,
    methods_of,
    scenarios_of,
    study_run,
)

#: Folder (inside the studied folder) that receives the study by default.
STUDY_REPORT_DIR = "study_report"
_REPORT_FOLDERS = {STUDY_REPORT_DIR, "sweep_report", ".hydra", "checkpoints", "lightning_logs"}


def find_results(folder: Path) -> list[Path]:
    """Every `results/` folder holding a `metrics.json` under `folder`, sorted by path."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _REPORT_FOLDERS)
        if Path(root).name == "results" and "metrics.json" in files:
            found.append(Path(root))
    return sorted(found)


def collect_runs(folder: Path) -> tuple[list[StudyRun], list[str]]:
    """The finished runs under `folder`, and a note for each `metrics.json` that was skipped."""
    from clarena.metrics.sweep import load_metrics
    from clarena.metrics.writers import json_safe

    runs, skipped = [], []
    for results_dir in find_results(folder):
        try:
            data = json_safe(load_metrics(results_dir))
            runs.append(study_run(results_dir.parent, results_dir, data))
        except ValueError as error:
            skipped.append(f"{results_dir.parent} ({error})")
    return runs, skipped


def _fmt(estimate: Estimate, scale: float = 100.0, digits: int = 2) -> str:
    if estimate.mean is None:
        return "–"
    mean = f"{estimate.mean * scale:.{digits}f}"
    if estimate.standard_error is None:
        return mean
    return f"{mean} ± {estimate.standard_error * scale:.{digits}f}"


def _cell_text(cell: StudyCell | None, key: str) -> str:
    if cell is None:
        return "–"
    return f"{_fmt(cell.estimates[key])} (n={cell.num_seeds})"


def _grid(cells: Sequence[StudyCell]) -> dict[tuple[str, str], StudyCell]:
    return {(c.method, c.scenario): c for c in cells}


def study_csv(cells: Sequence[StudyCell]) -> str:
    """One row per cell: the seeds, each metric's mean and standard error (fractions) and `n`,
    and the run folders."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["method", "scenario", "num_seeds", "seeds"]
    for key, _ in METRICS:
        header += [f"{key}_mean", f"{key}_se", f"{key}_n"]
    writer.writerow([*header, "runs"])
    for cell in cells:
        row: list[object] = [cell.method, cell.scenario, cell.num_seeds]
        row.append(" ".join("?" if s is None else str(s) for s in cell.seeds))
        for key, _ in METRICS:
            e = cell.estimates[key]
            row += ["" if e.mean is None else e.mean]
            row += ["" if e.standard_error is None else e.standard_error, e.n]
        writer.writerow([*row, " ".join(str(r.run_dir) for r in cell.runs)])
    return out.getvalue()


def _md(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def study_markdown(cells: Sequence[StudyCell], link: Callable[[StudyRun], str]) -> str:
    """The method × scenario tables (one per metric) and the runs of each cell, as Markdown;
    `link(run)` gives the address of a run's page."""
    scenarios, grid = scenarios_of(cells), _grid(cells)
    lines = [
        "# Study",
        "",
        "Mean ± standard error over seeds (n: the number of seeds); accuracy in %, forgetting "
        "and BWT in points.",
    ]
    for key, name in METRICS:
        lines += ["", f"## {name}", "", "| method | " + " | ".join(scenarios) + " |"]
        lines.append("|---" * (len(scenarios) + 1) + "|")
        for method in methods_of(cells):
            row = [_cell_text(grid.get((method, s)), key) for s in scenarios]
            lines.append(f"| {_md(method)} | " + " | ".join(row) + " |")
    lines += ["", "## Runs", ""]
    for cell in cells:
        runs = ", ".join(
            f"[seed {'?' if r.seed is None else r.seed}]({link(r)})" for r in cell.runs
        )
        lines.append(f"- {_md(cell.method)}, {cell.scenario}: {runs}")
    return "\n".join(lines) + "\n"


def study_page(
    cells: Sequence[StudyCell],
    link: Callable[[StudyRun], str],
    skipped: Sequence[str],
    title: str,
) -> str:
    """The study as a self-contained HTML page; every value is escaped."""
    from clarena.metrics.html import page, table

    scenarios, grid = scenarios_of(cells), _grid(cells)
    runs = sum(len(c.runs) for c in cells)
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{runs} runs in {len(cells)} cells · mean ± standard error over seeds '
        "(n: the number of seeds) · accuracy in %, forgetting and BWT in points</p>",
    ]
    if skipped:
        body.append(f'<p class="note">Skipped (unreadable): {html.escape("; ".join(skipped))}</p>')
    for key, name in METRICS:
        rows = [
            [method, *(_cell_text(grid.get((method, s)), key) for s in scenarios)]
            for method in methods_of(cells)
        ]
        body += [f"<h2>{html.escape(name)}</h2>", table(["method", *scenarios], rows)]
    body.append("<h2>Runs</h2>")
    items = []
    for cell in cells:
        anchors = ", ".join(
            f'<a href="{html.escape(link(r))}">seed {html.escape(str(r.seed))}</a>'
            for r in cell.runs
        )
        items.append(
            f"<li>{html.escape(cell.method)}, {html.escape(cell.scenario)}: {anchors}</li>"
        )
    body.append("<ul>" + "".join(items) + "</ul>")
    return page(title, body)


def report_study(folder: Path, output: Path | None = None) -> Path:
    """Write `study.csv`, `study.md` and `report.html` of the runs under `folder` into `output`
    (default `folder/study_report/`); return the page's path.

    Raises:
        ValueError: when no finished run is found under `folder`.
    """
    from clarena.core.files import atomic_write_text
    from clarena.pipelines.report import PAGE_NAME, report_run

    runs, skipped = collect_runs(folder)
    if not runs:
        detail = f" ({'; '.join(skipped)})" if skipped else ""
        raise ValueError(
            f"no finished run under {folder}{detail}; pass a folder holding runs' "
            "results/metrics.json"
        )
    out_dir = (output or folder / STUDY_REPORT_DIR).absolute()
    pages: dict[Path, Path] = {}
    for run in runs:
        run_page = run.results_dir / PAGE_NAME
        if not run_page.is_file():
            try:
                run_page = report_run(run.results_dir)
            except (ValueError, OSError, KeyError, TypeError) as error:
                skipped.append(f"{run.run_dir}: no page ({error})")
                run_page = run.results_dir / "metrics.json"
        pages[run.results_dir] = run_page

    def link(run: StudyRun) -> str:
        return Path(os.path.relpath(pages[run.results_dir].absolute(), out_dir)).as_posix()

    cells = aggregate(runs)
    atomic_write_text(out_dir / "study.csv", study_csv(cells))
    atomic_write_text(out_dir / "study.md", study_markdown(cells, link))
    title = f"clarena study: {folder.absolute().name}"
    return atomic_write_text(out_dir / PAGE_NAME, study_page(cells, link, skipped, title))

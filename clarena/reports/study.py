"""The study table of `clarena report` as CSV, Markdown and a self-contained HTML page.

The runs of a study are grouped into `clarena.metrics.study.StudyCell`s (the replicates of one
setting in one scenario, mean ± standard error over seeds: the math); this module writes the cells
out: `study_csv` (one row per cell, fractions at full precision), `study_markdown` and
`study_page` (one setting × scenario table per metric, mean ± standard error in percent or points,
with the number of seeds; the seeds counted once; then every cell's runs linked to their own
pages). A link is the relative address `link(run)` gives (`clarena.reports.html.relative_link`),
escaped. Finding the runs and writing the files is `clarena.reports.study_files`.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Callable, Sequence

from clarena.metrics.study import (
    METRICS,
    Estimate,
    StudyCell,
    StudyRun,
    rows_of,
    scenarios_of,
)
from clarena.reports.html import page, table


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
    return {(c.row, c.scenario): c for c in cells}


def _seed(run: StudyRun) -> str:
    return "?" if run.seed is None else str(run.seed)


def _repeated(cell: StudyCell) -> str:
    """`seed 3 (runs a, b)` for each seed of the cell that more than one run has."""
    parts = []
    for seed in dict.fromkeys(r.seed for r in cell.repeated):
        runs = [r for r in (*cell.runs, *cell.repeated) if r.seed == seed]
        parts.append(f"seed {seed} ({', '.join(str(r.run_dir) for r in runs)})")
    return "; ".join(parts)


def study_csv(cells: Sequence[StudyCell]) -> str:
    """One row per cell: the seeds, each metric's mean and standard error (fractions) and `n`,
    and the run folders."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["method", "setting", "scenario", "num_seeds", "seeds", "repeated_seeds"]
    for key, _ in METRICS:
        header += [f"{key}_mean", f"{key}_se", f"{key}_n"]
    writer.writerow([*header, "runs"])
    for cell in cells:
        row: list[object] = [cell.method, cell.setting, cell.scenario, cell.num_seeds]
        row.append(" ".join(_seed(r) for r in cell.runs))
        row.append(" ".join(dict.fromkeys(_seed(r) for r in cell.repeated)))
        for key, _ in METRICS:
            e = cell.estimates[key]
            row += ["" if e.mean is None else e.mean]
            row += ["" if e.standard_error is None else e.standard_error, e.n]
        writer.writerow([*row, " ".join(str(r.run_dir) for r in cell.runs)])
    return out.getvalue()


def _md(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def study_markdown(cells: Sequence[StudyCell], link: Callable[[StudyRun], str]) -> str:
    """The setting × scenario tables (one per metric) and the runs of each cell, as Markdown;
    `link(run)` gives the address of a run's page."""
    scenarios, grid = scenarios_of(cells), _grid(cells)
    lines = [
        "# Study",
        "",
        "Mean ± standard error over seeds (n: the number of seeds, each counted once); accuracy "
        "in %, forgetting and BWT in points.",
    ]
    for key, name in METRICS:
        lines += ["", f"## {name}", "", "| method | " + " | ".join(scenarios) + " |"]
        lines.append("|---" * (len(scenarios) + 1) + "|")
        for label in rows_of(cells):
            row = [_cell_text(grid.get((label, s)), key) for s in scenarios]
            lines.append(f"| {_md(label)} | " + " | ".join(row) + " |")
    lines += ["", "## Runs", ""]
    for cell in cells:
        runs = ", ".join(f"[seed {_seed(r)}]({link(r)})" for r in cell.runs)
        lines.append(f"- {_md(cell.row)}, {cell.scenario}: {runs}")
        if cell.repeated:
            lines.append(f"  - repeated, counted once: {_md(_repeated(cell))}")
    return "\n".join(lines) + "\n"


def study_page(
    cells: Sequence[StudyCell],
    link: Callable[[StudyRun], str],
    skipped: Sequence[str],
    title: str,
) -> str:
    """The study as a self-contained HTML page; every value is escaped."""
    scenarios, grid = scenarios_of(cells), _grid(cells)
    runs = sum(len(c.runs) for c in cells)
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{runs} runs in {len(cells)} cells · mean ± standard error over seeds '
        "(n: the number of seeds, each counted once) · accuracy in %, forgetting and BWT in "
        "points</p>",
    ]
    if skipped:
        body.append(f'<p class="note">Skipped (unreadable): {html.escape("; ".join(skipped))}</p>')
    repeated = [f"{c.row}, {c.scenario}: {_repeated(c)}" for c in cells if c.repeated]
    if repeated:
        body.append(
            '<p class="note">Repeated seeds, counted once (the first run in path order): '
            f"{html.escape('; '.join(repeated))}</p>"
        )
    for key, name in METRICS:
        rows = [
            [label, *(_cell_text(grid.get((label, s)), key) for s in scenarios)]
            for label in rows_of(cells)
        ]
        body += [f"<h2>{html.escape(name)}</h2>", table(["method", *scenarios], rows)]
    body.append("<h2>Runs</h2>")
    items = []
    for cell in cells:
        anchors = ", ".join(
            f'<a href="{html.escape(link(r))}">seed {html.escape(_seed(r))}</a>' for r in cell.runs
        )
        items.append(f"<li>{html.escape(cell.row)}, {html.escape(cell.scenario)}: {anchors}</li>")
    body.append("<ul>" + "".join(items) + "</ul>")
    return page(title, body)

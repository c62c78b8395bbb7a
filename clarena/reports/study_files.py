"""`clarena report` over a folder of runs: the study table as CSV, Markdown and an HTML page.

The folder may hold sweeps (`0/`, `1/`, …), separate runs, or both, at any depth: every
`results/metrics.json` under it is a run (report folders are not searched). The replicates of each
setting in each scenario form a cell (`clarena.metrics.study`), written to the output folder as
`study.csv`, `study.md` and `report.html` (`clarena.reports.study`). The study writes nothing
but its own output: a run that has its page (`results/report.html`) is linked to it, a run
without one gets its page in the study's `runs/` folder. Links are relative and percent-encoded
(`clarena.reports.html.relative_link`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from clarena.metrics.study import StudyRun, aggregate, study_run

#: Folder (inside the studied folder) that receives the study by default.
STUDY_REPORT_DIR = "study_report"
#: Folder (inside the study's output) that receives the pages of runs that have none.
RUN_PAGES_DIR = "runs"
_REPORT_FOLDERS = {STUDY_REPORT_DIR, "sweep_report", ".hydra", "checkpoints", "lightning_logs"}


def find_results(folder: Path) -> list[Path]:
    """Every `results/` folder holding a `metrics.json` under `folder`, sorted by path."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _REPORT_FOLDERS)
        if Path(root).name == "results" and "metrics.json" in files:
            found.append(Path(root))
    return sorted(found)


def _page_name(run_dir: Path, folder: Path, taken: set[str]) -> str:
    """`sweep_ewc-0.html` for `folder/sweep_ewc/0`: the run's path below the studied folder with
    every character but letters, digits, `.`, `_` and `-` replaced, unique among `taken`."""
    relative = os.path.relpath(run_dir.absolute(), folder.absolute())
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", relative.replace(os.sep, "-")).strip("._") or "run"
    name, n = f"{stem}.html", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.html"
    taken.add(name)
    return name


def collect_runs(folder: Path) -> tuple[list[StudyRun], list[str]]:
    """The finished runs under `folder`, and a note for each `metrics.json` that was skipped."""
    from clarena.metrics.sweep import load_metrics
    from clarena.reports.writers import json_safe

    runs, skipped = [], []
    for results_dir in find_results(folder):
        try:
            data = json_safe(load_metrics(results_dir))
            runs.append(study_run(results_dir.parent, results_dir, data))
        except ValueError as error:
            skipped.append(f"{results_dir.parent} ({error})")
    return runs, skipped


def report_study(folder: Path, output: Path | None = None) -> Path:
    """Write `study.csv`, `study.md` and `report.html` of the runs under `folder` into `output`
    (default `folder/study_report/`); return the page's path.

    Raises:
        ValueError: when no finished run is found under `folder`.
    """
    from clarena.core.files import atomic_write_text
    from clarena.reports.html import relative_link
    from clarena.reports.run_report import PAGE_NAME, render_run
    from clarena.reports.study import study_csv, study_markdown, study_page

    runs, skipped = collect_runs(folder)
    if not runs:
        detail = f" ({'; '.join(skipped)})" if skipped else ""
        raise ValueError(
            f"no finished run under {folder}{detail}; pass a folder holding runs' "
            "results/metrics.json"
        )
    out_dir = (output or folder / STUDY_REPORT_DIR).absolute()
    pages: dict[Path, Path] = {}
    taken: set[str] = set()
    for run in runs:
        run_page = run.results_dir / PAGE_NAME
        if not run_page.is_file():
            run_page = out_dir / RUN_PAGES_DIR / _page_name(run.run_dir, folder, taken)
            try:
                atomic_write_text(run_page, render_run(run.results_dir)[0])
            except (ValueError, OSError, KeyError, TypeError) as error:
                skipped.append(f"{run.run_dir}: no page ({error})")
                run_page = run.results_dir / "metrics.json"
        pages[run.results_dir] = run_page

    def link(run: StudyRun) -> str:
        return relative_link(pages[run.results_dir], out_dir)

    cells = aggregate(runs)
    atomic_write_text(out_dir / "study.csv", study_csv(cells))
    atomic_write_text(out_dir / "study.md", study_markdown(cells, link))
    title = f"clarena study: {folder.absolute().name}"
    return atomic_write_text(out_dir / PAGE_NAME, study_page(cells, link, skipped, title))

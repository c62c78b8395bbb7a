"""`clarena report PATH`: render a finished run or a sweep as a self-contained static HTML page.

- **One run**: `PATH` is a run folder (holding `results/metrics.json`) or its `results/` folder.
  The page `report.html` is written into the results folder (or `--output DIR`), with the plots of
  `clarena.reports.writers` embedded (drawn again from `metrics.json` when a PNG is missing), the
  summary, the accuracy matrix, the compatibility tables and the resolved configuration.
- **A sweep**: `PATH` is a Hydra multirun folder whose numbered subfolders `0/`, `1/`, … are runs.
  The page and its PNGs (`tradeoff_btc.png`, `tradeoff_bec.png`, `error_overlap.png`,
  `incompatible_per_class.png`) and `sweep.csv` go to `PATH/sweep_report/` (or `--output DIR`):
  accuracy against BTC and against BEC with the old model's accuracy as a reference line, new-error
  and strict-imitation runs drawn with different markers and labelled with their λc, and per run the
  error overlap and the incompatible points per class (see `clarena.reports.sweep`). Unfinished runs
  (no `metrics.json` yet) are listed and skipped. This is the page of a sweep of the
  backward-compatibility algorithms (a λc sweep); other sweeps get the study below.
- **A study**: `PATH` is any folder of runs (sweeps or separate runs, at any depth), or `--study`
  is given: a setting × scenario table of mean ± standard error over seeds of the final average
  accuracy, forgetting and BWT (replicates only: runs equal but for the seed and paths), with the
  number of seeds per cell and links to each run's page, as `report.html`, `study.csv` and
  `study.md` in `PATH/study_report/` (or `--output DIR`); nothing is written into the runs; see
  `clarena.reports.study_files`.

The page of one run is `clarena.reports.run_report`. Every file is written to a temporary name
and renamed. A path that is neither a run nor a sweep
stops with a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clarena.reports.run_report import PAGE_NAME, report_run, results_dir_of

#: Folder (inside a sweep folder) that receives a sweep's page and plots by default.
SWEEP_REPORT_DIR = "sweep_report"


def _sweep_runs(path: Path) -> list[Path]:
    """The numbered run folders of a multirun folder, in numeric order."""
    runs = [p for p in path.iterdir() if p.is_dir() and p.name.isdigit()]
    return sorted(runs, key=lambda p: int(p.name))


def report_sweep(sweep_dir: Path, runs: list[Path], output: Path | None = None) -> Path:
    """Write the page and plots of a sweep; return the page's path."""
    from clarena.core.files import atomic_write_bytes, atomic_write_text
    from clarena.metrics.sweep import load_metrics, sweep_point
    from clarena.reports.sweep import sweep_csv, sweep_page
    from clarena.reports.sweep_plots import (
        error_overlap_png,
        incompatible_per_class_png,
        tradeoff_png,
    )
    from clarena.reports.writers import json_safe
    from clarena.run.sweep_ensemble import ensemble_reference

    points, skipped = [], []
    for run in runs:
        results_dir = results_dir_of(run)
        if results_dir is None:
            skipped.append(f"{run.name}/ (no results/metrics.json)")
            continue
        try:
            points.append(sweep_point(run.name, run, json_safe(load_metrics(results_dir))))
        except ValueError as error:
            skipped.append(f"{run.name}/ ({error})")
    if not points:
        raise ValueError(
            f"no finished run in the sweep {sweep_dir} ({'; '.join(skipped)}); "
            "wait for the runs to finish or pass one run's folder"
        )
    points.sort(key=lambda p: (p.kind, p.lambda_c if p.lambda_c is not None else 0.0, p.name))
    out_dir = output or sweep_dir / SWEEP_REPORT_DIR
    ensemble = ensemble_reference(points)
    pngs = {
        "tradeoff_btc.png": tradeoff_png(points, "btc", ensemble),
        "tradeoff_bec.png": tradeoff_png(points, "bec"),
        "error_overlap.png": error_overlap_png(points),
        "incompatible_per_class.png": incompatible_per_class_png(points),
    }
    for name, png in pngs.items():
        atomic_write_bytes(out_dir / name, png)
    atomic_write_text(out_dir / "sweep.csv", sweep_csv(points))
    title = f"clarena sweep report: {sweep_dir.resolve().name}"
    page = sweep_page(points, pngs, skipped, title, ensemble)
    return atomic_write_text(out_dir / PAGE_NAME, page)


def report(path: str | Path, output: str | Path | None = None, study: bool = False) -> Path:
    """Render the run, sweep or study at `path` (see the module docstring); return the page's path.

    `study=True` renders the study of the runs under `path` whatever it holds.

    Raises:
        ValueError: when `path` is neither a run nor a sweep, or holds no finished run.
    """
    path = Path(path)
    out = Path(output) if output is not None else None
    if not path.exists():
        raise ValueError(f"{path} does not exist; pass a run's output folder or a sweep folder")
    if not path.is_dir():
        raise ValueError(f"{path} is a file; pass the folder of a run or of a sweep")
    from clarena.reports.study_files import find_results, report_study

    results_dir = results_dir_of(path)
    if results_dir is not None and not study:
        if out is None:  # written into the run: no link may lead the writes elsewhere
            from clarena.run_folder.received import check_no_symlinks

            check_no_symlinks(path)
        return report_run(results_dir, out)
    runs = _sweep_runs(path)
    if runs and not study and _is_compatibility_sweep(runs):
        return report_sweep(path, runs, out)
    if study or find_results(path):
        return report_study(path, out)
    raise ValueError(
        f"{path} is neither a run (no results/metrics.json) nor a sweep (no numbered run "
        "subfolders 0/, 1/, …) nor a folder of runs; pass a run's output folder, a Hydra "
        "multirun folder or a folder holding runs"
    )


def _is_compatibility_sweep(runs: list[Path]) -> bool:
    """Whether a numbered sweep is one of the backward-compatibility algorithms (the λc sweep
    page), or has no finished run yet (its page says so); other sweeps are studies."""
    from clarena.metrics.sweep import algorithm_kind, load_metrics, run_config

    finished = False
    for run in runs:
        results_dir = results_dir_of(run)
        if results_dir is None:
            continue
        try:
            data = load_metrics(results_dir)
        except ValueError:
            continue
        finished = True
        target = str((run_config(run, data).get("cl_algorithm") or {}).get("_target_", ""))
        if algorithm_kind(target) != "other":
            return True
    return not finished


def main(argv: list[str]) -> int:
    """Entry point of `clarena report`."""
    parser = argparse.ArgumentParser(
        prog="clarena report",
        description="Render a finished run, a lambda_c sweep or a study (a folder of runs: "
        "method x scenario, mean ± standard error over seeds) as a self-contained HTML page.",
    )
    parser.add_argument(
        "path", help="a run folder (with results/metrics.json), a sweep folder or a folder of runs"
    )
    parser.add_argument(
        "-o",
        "--output",
        help="folder for report.html and its PNGs (default: the run's results folder, or "
        f"<sweep>/{SWEEP_REPORT_DIR})",
    )
    parser.add_argument(
        "--study",
        action="store_true",
        help="the study table of every run under PATH (default for folders of runs that are "
        "not a run nor a λc sweep)",
    )
    parser.add_argument("--verbose", action="store_true", help="print the traceback of a failure")
    args = parser.parse_args(argv)
    try:
        page = report(args.path, args.output, study=args.study)
    except OSError as error:
        from clarena.core.files import describe_os_error

        print(f"clarena report: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"clarena report: {error}", file=sys.stderr)
        return 2
    except (TypeError, AttributeError, KeyError, IndexError) as error:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(
            f"clarena report: a metrics.json under {args.path} holds a value of the wrong type "
            f"or misses a key ({type(error).__name__}: {error}); it was not written by this "
            "clarena or was edited: re-create it with clarena eval <run folder>",
            file=sys.stderr,
        )
        return 2
    print(f"clarena report: wrote {page}")
    return 0

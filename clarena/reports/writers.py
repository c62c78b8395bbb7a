"""The results files of a run, written atomically into `<output_dir>/results/`.

`write_results(data, results_dir)` takes the dict of `CLResults.to_dict` (the content of
`metrics.json`) and writes

- `metrics.json`: everything, machine-readable (NaN written as `null`): the accuracy matrices,
  summaries and compatibility rows, the run's identity (`run`: experiment, algorithm, dataset,
  scenario, seed), the names of its labels (`class_names`, or `null`), its resolved `config` and
  its `provenance` (`clarena.metrics.provenance.PROVENANCE_KEYS`);
- `accuracy_matrix.csv`: columns `after_training_task, average_accuracy, test_on_task_1..k`
  (fractions; empty where not measured), and in CIL `accuracy_matrix_task_aware.csv` alike;
- `compatibility.csv`: one row per (comparison, old model, new model, test task) with the counts,
  the accuracies of both models, NFR, PFR, NFI, BTC and BEC (`test_task` is `all` on pooled rows,
  `old_after_task` is empty when the old model is the user-supplied reference);
- `accuracy_matrix.png` (and `accuracy_matrix_task_aware.png` in CIL), `average_accuracy.png`,
  `flips.png`, each titled with the run's identity.

Every file goes to a temporary name in the same folder first and is renamed over the target
(`os.replace`), so a reader never sees half a file and a crash never corrupts an older one.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from clarena.core.compatibility import COUNT_NAMES, SCORE_NAMES
from clarena.core.files import atomic_write_bytes, atomic_write_text
from clarena.metrics.provenance import identity_line, run_identity
from clarena.reports import plots

#: Columns of `compatibility.csv`, in order.
COMPATIBILITY_COLUMNS: tuple[str, ...] = (
    "comparison",
    "old_after_task",
    "new_after_task",
    "test_task",
    *COUNT_NAMES,
    "old_accuracy",
    "new_accuracy",
    *SCORE_NAMES,
)


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf floats as `None` and tuples as lists, so strict JSON parsers read it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return str(value)


def accuracy_matrix_csv(matrix: list[list[Any]], per_task: list[Any]) -> str:
    """The CSV text of an accuracy matrix with its per-row average accuracy."""
    width = max((len(r) for r in matrix), default=0)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["after_training_task", "average_accuracy"]
    writer.writerow(header + [f"test_on_task_{j}" for j in range(1, width + 1)])
    for t, (row, average) in enumerate(zip(matrix, per_task), start=1):
        writer.writerow([t, _cell(average), *(_cell(v) for v in row)])
    return out.getvalue()


def compatibility_csv(rows: list[dict[str, Any]]) -> str:
    """The CSV text of the compatibility rows of `CLResults.compatibility`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COMPATIBILITY_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in COMPATIBILITY_COLUMNS])
    return out.getvalue()


def pooled_consecutive(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pooled rows (`test_task == "all"`) comparing consecutive models."""
    return [r for r in rows if r["comparison"] == "consecutive" and r["test_task"] == "all"]


def plot_pngs(data: dict[str, Any]) -> dict[str, bytes]:
    """The PNG plots of one run (file name -> bytes) from the content of `metrics.json`."""
    aware = data.get("accuracy_matrix_task_aware")
    suffix = " (task-agnostic)" if aware is not None else ""
    identity = data.get("run")
    if not isinstance(identity, dict):
        identity = run_identity(data.get("config"))
    subtitle = identity_line(identity, data.get("scenario"))
    pngs = {
        "accuracy_matrix.png": plots.accuracy_matrix_png(
            data["accuracy_matrix"], "Accuracy matrix a[t, j]" + suffix, subtitle
        ),
        "average_accuracy.png": plots.average_accuracy_png(
            data["average_accuracy_per_task"],
            data.get("average_accuracy_per_task_task_aware"),
            subtitle,
        ),
        "flips.png": plots.flips_png(
            pooled_consecutive(data["compatibility"]), int(data["num_tasks"]), subtitle
        ),
    }
    if aware is not None:
        pngs["accuracy_matrix_task_aware.png"] = plots.accuracy_matrix_png(
            aware, "Accuracy matrix a[t, j] (task-aware)", subtitle
        )
    return pngs


def write_results(data: dict[str, Any], results_dir: str | Path, plots: bool = True) -> list[Path]:
    """Write every results file of one run into `results_dir` (see the module docstring).

    With `plots=False` the PNG plots are left as they are (the task loop draws them after the last
    task only: drawing them costs about 0.4 s a task, the tables a few milliseconds).
    """
    results_dir = Path(results_dir)
    safe = json_safe(data)
    written = [
        atomic_write_text(
            results_dir / "accuracy_matrix.csv",
            accuracy_matrix_csv(safe["accuracy_matrix"], safe["average_accuracy_per_task"]),
        ),
        atomic_write_text(
            results_dir / "compatibility.csv", compatibility_csv(safe["compatibility"])
        ),
    ]
    if safe.get("accuracy_matrix_task_aware") is not None:
        text = accuracy_matrix_csv(
            safe["accuracy_matrix_task_aware"], safe["average_accuracy_per_task_task_aware"]
        )
        written.append(atomic_write_text(results_dir / "accuracy_matrix_task_aware.csv", text))
    for name, png in (plot_pngs(safe) if plots else {}).items():
        written.append(atomic_write_bytes(results_dir / name, png))
    # metrics.json last: its presence marks a complete set of results files.
    text = json.dumps(safe, indent=2, allow_nan=False, default=str) + "\n"
    written.append(atomic_write_text(results_dir / "metrics.json", text))
    return written

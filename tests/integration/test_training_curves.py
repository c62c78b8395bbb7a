"""A run's CSV log is one timeline split by task, and its report draws the training curves."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from test_train_support import clarena

pytestmark = pytest.mark.integration


def test_a_three_task_log_has_a_task_column_a_monotone_step_and_curves_in_the_report(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    args = ("cl_dataset.num_tasks=3", "trainer.max_epochs=2", "seed=3", f"output_dir={run}")
    proc = clarena("train", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader((run / "lightning_logs" / "metrics.csv").open()))
    assert [r["task"] for r in rows] == sorted(r["task"] for r in rows)
    assert {r["task"] for r in rows} == {"1", "2", "3"}
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps)
    train = [r for r in rows if r.get("train/loss")]
    # every task's training rows lie after the previous task's: the step runs on across tasks
    last = {t: max(int(r["step"]) for r in train if r["task"] == t) for t in ("1", "2")}
    first = {t: min(int(r["step"]) for r in train if r["task"] == t) for t in ("2", "3")}
    assert last["1"] < first["2"] and last["2"] < first["3"]
    report = clarena("report", str(run), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    png = run / "results" / "training_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'alt="training curves"' in (run / "results" / "report.html").read_text()

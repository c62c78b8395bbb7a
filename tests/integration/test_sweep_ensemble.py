"""The ensemble reference of a sweep over seeds, from the saved models of its λc = 0 runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_train_support import clarena

from clarena.metrics.sweep import load_metrics, sweep_point
from clarena.run.sweep_ensemble import ensemble_reference

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ensemble_of_the_baseline_updates_is_scored_against_each_h1(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = clarena(
        "train",
        "-m",
        "cl_dataset=update_digits",
        "cl_dataset.num_tasks=2",
        "scenario=DataIL",
        "cl_algorithm=bc_new_error",
        "cl_algorithm.lambda_c=0,1",
        "seed=1,2",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"output_dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = sorted(p for p in sweep.iterdir() if p.name.isdigit())
    points = [sweep_point(r.name, r, load_metrics(r / "results")) for r in runs]
    baseline = [p for p in points if p.lambda_c == 0.0]
    assert sorted(p.seed for p in baseline) == [1, 2]
    ensemble = ensemble_reference(points)
    assert ensemble is not None and ensemble.members == 2
    # each member rebuilt from its checkpoints flips exactly what its run recorded
    recorded = sorted(p.nfr for p in baseline)
    assert ensemble.member_nfr.mean == pytest.approx(sum(recorded) / 2, abs=1e-7)
    assert 0.0 <= ensemble.nfr.mean <= 1.0 and 0.0 < ensemble.accuracy <= 1.0
    # a sweep with one λc = 0 run has no ensemble
    assert ensemble_reference([p for p in points if p.seed == 1]) is None

    proc = clarena("report", str(sweep), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (sweep / "sweep_report" / "report.html").read_text(encoding="utf-8")
    assert "Mean over seeds" in page and "Ensemble reference" in page

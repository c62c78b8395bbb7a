"""A multirun sweep over the BC strength λc leaves one complete run per value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_train_support import clarena

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("launcher", [None, "local_parallel"])
def test_a_sweep_of_three_lambda_values_leaves_three_complete_runs(
    tmp_path: Path, launcher: str | None
) -> None:
    """Hydra's basic launcher runs the jobs in turn; `local_parallel` (joblib) in 2 processes."""
    sweep = tmp_path / "sweep"
    launcher_args = [f"hydra/launcher={launcher}"] if launcher else []
    proc = clarena(
        "train",
        "-m",
        *launcher_args,
        "cl_dataset=update_digits",
        "scenario=DataIL",
        "cl_algorithm=bc_new_error",
        "cl_algorithm.lambda_c=0,0.5,1",
        "trainer.max_epochs=1",
        "logger=none",
        f"output_dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1", "2"]
    for job, lambda_c in zip(("0", "1", "2"), (0.0, 0.5, 1.0)):
        run = sweep / job
        metrics = json.loads((run / "results" / "metrics.json").read_text())
        assert metrics["config"]["cl_algorithm"]["lambda_c"] == lambda_c
        assert metrics["config"]["output_dir"] == str(run)
        assert metrics["num_tasks"] == 3 and len(metrics["accuracy_matrix"]) == 3
        assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == [
            "after_task_1.pt",
            "after_task_2.pt",
            "after_task_3.pt",
        ]
        assert any(r["comparison"] == "consecutive" for r in metrics["compatibility"])

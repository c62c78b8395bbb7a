"""A NaN loss stops `clarena train` with one line, even with no callbacks at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_train_support import clarena

pytestmark = pytest.mark.integration


def test_a_diverging_run_without_callbacks_stops_with_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = clarena(
        "train",
        "callbacks=none",
        "logger=none",
        "optimizer=sgd",
        "optimizer.lr=1e30",
        f"output_dir={run}",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("clarena train: error: the training loss became ")
    assert " at task 1, step " in last and "lower optimizer.lr" in last
    assert not (run / "checkpoints" / "after_task_1.pt").exists()

"""Runs that start and then fail: a missing dataset and a NaN loss.

Each stops with one line naming the cause and the fix, exit code 1, the traceback only in the run's
`train.log`, and no other folder touched.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_train_support import clarena, snapshot

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["cl_dataset=split_mnist", "+cl_dataset.download=false"],
            "DatasetNotFoundError: mnist files not found",
        ),
        (
            ["optimizer=sgd", "optimizer.lr=1e30"],
            "the training loss became nan at task 1, step",
        ),
    ],
)
def test_a_failing_run_ends_with_one_line_and_touches_no_other_folder(
    args: list[str], message: str, tmp_path: Path
) -> None:
    data_root = tmp_path / "empty_data"
    data_root.mkdir()
    finished = tmp_path / "finished_run" / "results"
    finished.mkdir(parents=True)
    (finished / "accuracy_matrix.csv").write_text("after_training_task,average_accuracy\n1,0.5\n")
    before = snapshot(tmp_path / "finished_run")

    run = tmp_path / "failed_run"
    proc = clarena("train", *args, f"data_root={data_root}", f"output_dir={run}", cwd=tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("clarena train: error: ")
    assert message in last
    if "mnist" in message:  # where the files must be, and the dataset that needs none
        assert str(data_root / "MNIST" / "raw") in last and "split_digits" in last
    assert last.endswith(f"[traceback in {run / 'train.log'}]")
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr
    assert "Traceback" in (run / "train.log").read_text()
    assert snapshot(tmp_path / "finished_run") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "empty_data",
        "failed_run",
        "finished_run",
    ]


def test_verbose_prints_the_traceback_of_a_failing_run(tmp_path: Path) -> None:
    run = tmp_path / "failed_run"
    proc = clarena(
        "train",
        "--verbose",
        "optimizer=sgd",
        "optimizer.lr=1e30",
        f"output_dir={run}",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "NonFiniteLossError" in proc.stderr
    assert (
        proc.stderr.strip().splitlines()[-1].startswith("clarena train: error: the training loss")
    )

"""A resumed run's `metrics.csv` has the bytes of the uninterrupted run's (issue 37, item 10):
the rows kept on resume are written back with the line ends of Lightning's own CSV writer."""

from __future__ import annotations

from pathlib import Path

from clarena.run.loggers import TASK_KEY, CSVLogger


def _log(logger: CSVLogger, steps: range) -> None:
    for step in steps:
        logger.log_metrics({"train/loss": 1.0 / (step + 1), TASK_KEY: 1}, step=step)
        logger.save()


def test_a_resumed_csv_log_is_byte_identical_to_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = CSVLogger(save_dir=str(tmp_path / "whole"), name="logs", version="")
    _log(whole, range(6))
    expected = Path(whole.experiment.metrics_file_path).read_bytes()
    assert b"\r\n" in expected  # Lightning's writer ends lines with CRLF

    killed = CSVLogger(save_dir=str(tmp_path / "resumed"), name="logs", version="")
    _log(killed, range(5))  # killed after step 4, its last checkpoint after 3 steps
    resumed = CSVLogger(save_dir=str(tmp_path / "resumed"), name="logs", version="")
    resumed.keep_until = (1, 0, 3)  # task 1 began at run step 0; 3 of its steps were done
    _log(resumed, range(3, 6))
    assert Path(resumed.experiment.metrics_file_path).read_bytes() == expected

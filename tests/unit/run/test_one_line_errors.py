"""Bad input and failing disks end in one line naming the cause and the fix."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import pytest
import torch

from clarena.commands import init_configs, report, train
from clarena.core.errors import ConfigError, one_line
from clarena.run.config import compose_config, validate_config
from clarena.run_folder.logfile import RunLogHandler


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (["trainer.max_steps=-2"], "trainer.max_steps=-2 is not a budget"),
        (["trainer.max_steps=0"], "trainer.max_steps=0 trains nothing"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing"),
        (["trainer.max_epochs=-1", "trainer.max_steps=-1"], "never end a task"),
        (["cl_dataset.num_tasks=0"], "cl_dataset.num_tasks=0: use a positive integer"),
        (["seed=-1"], "seed=-1 is outside 0..4294967295"),
        ([f"seed={2**32}"], "is outside 0..4294967295"),
        (["flush_denormal=maybe"], "wrong type for flush_denormal: got 'maybe'"),
    ],
)
def test_budgets_tasks_and_seeds_are_refused_up_front(overrides: list[str], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(compose_config(overrides), build=False)
    assert says in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_the_gpu_trainer_without_a_gpu_is_refused() -> None:
    with pytest.raises(ConfigError, match="has no CUDA GPU: use trainer=cpu"):
        validate_config(compose_config(["trainer=gpu"]), build=False)


def test_refusals_leave_no_folder_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train.main(["trainer.max_steps=0", f"output_dir={run}"]) == 2
    assert not run.exists()
    assert train.main(["--trust-config", f"output_dir={run}"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and "--trust-config only applies to resume=" in errors[1]


def test_os_errors_are_one_line_with_what_to_do() -> None:
    text = one_line(OSError(errno.EEXIST, "File exists", "/runs/x"))
    assert (
        text == "/runs/x: File exists; it already exists: choose a new name or remove the old one"
    )
    assert "disk is full" in one_line(OSError(errno.ENOSPC, "No space left on device", "/a"))


def test_a_full_disk_gives_one_line_once_not_logging_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = RunLogHandler(str(tmp_path / "train.log"))

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "train.log"))

    assert handler.stream is not None
    monkeypatch.setattr(handler.stream, "write", full)
    log = logging.getLogger("clarena.test_full_disk")
    log.addHandler(handler)
    try:
        for i in range(5):
            log.warning("message %d", i)
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err
    assert "Logging error" not in err and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "train.log" in lines[0] and "the disk is full" in lines[0]


def test_init_on_an_unwritable_path_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    assert init_configs.main([str(tmp_path / "file" / "configs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0]


@pytest.mark.parametrize(
    "damage",
    [
        {"summary": [1, 2]},
        {"accuracy_matrix": "oops"},
        {"compatibility": {"x": 1}},
    ],
)
def test_report_on_a_metrics_file_of_wrong_types_is_one_line(
    damage: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = {
        "scenario": "TIL",
        "num_tasks": 1,
        "accuracy_matrix": [[0.5]],
        "average_accuracy_per_task": [0.5],
        "summary": {"average_accuracy": 0.5},
        "compatibility": [],
        **damage,
    }
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "metrics.json").write_text(json.dumps(metrics))
    code = report.main([str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("clarena report: ")
    assert "Traceback" not in err[0]

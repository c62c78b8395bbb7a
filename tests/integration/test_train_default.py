"""`clarena train` with no arguments: the embedded default, offline, end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from test_train_support import clarena, snapshot

pytestmark = pytest.mark.integration


def test_clarena_train_without_arguments_writes_the_results(tmp_path: Path) -> None:
    proc = clarena("train", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = (tmp_path / "outputs" / "default").iterdir()
    results = run / "results"
    for name in ("accuracy_matrix.csv", "metrics.json", "compatibility.csv"):
        assert (results / name).is_file(), name
    assert list(results.glob("*.png"))
    with open(results / "accuracy_matrix.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["after_training_task", "average_accuracy"] + [
        f"test_on_task_{j}" for j in range(1, 6)
    ]
    assert [row[0] for row in rows[1:]] == ["1", "2", "3", "4", "5"]
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["scenario"] == "TIL" and metrics["num_tasks"] == 5
    assert metrics["config"]["cl_algorithm"]["_target_"] == "clarena.cl_algorithms.LwF"
    assert metrics["config"]["output_dir"] == str(run)
    for task in range(1, 6):
        state = torch.load(run / "checkpoints" / f"after_task_{task}.pt", weights_only=True)
        assert state["task_id"] == task and state["num_tasks"] == 5
    assert not (run / "checkpoints" / "within_task").exists()
    assert (run / "lightning_logs" / "metrics.csv").is_file()
    assert (run / "train.log").is_file() and (run / "config.yaml").is_file()
    assert "average accuracy" in proc.stdout and f"results: {run}" in proc.stdout.replace("\n", "")
    assert "Traceback" not in proc.stderr


def test_clarena_eval_re_tests_the_saved_models_and_rewrites_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ("cl_dataset.num_tasks=3", "trainer.max_epochs=1", "scenario=CIL", "logger=none")
    trained = clarena("train", *args, f"output_dir={run}", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    before = snapshot(run)
    proc = clarena("eval", str(run), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "identical to the accuracy matrix saved by training" in proc.stdout
    after = snapshot(run)
    new = sorted(k for k in after if k not in before)
    assert {k: after[k] for k in before} == before  # nothing of the run rewritten
    assert all(k.startswith("eval/") for k in new) and "eval/accuracy_matrix.csv" in new
    assert after["eval/accuracy_matrix.csv"] == before["results/accuracy_matrix.csv"]
    assert (
        after["eval/accuracy_matrix_task_aware.csv"]
        == before["results/accuracy_matrix_task_aware.csv"]
    )


def test_a_single_run_composes_its_config_once(tmp_path, monkeypatch) -> None:
    """`clarena train` composes the config once for a run (its pre-flight check's composition is
    the job's), and the job still gets Hydra's records: `.hydra/config.yaml`, `overrides.yaml`
    (the resume command's source) with the fresh `output_dir`."""
    import yaml
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    from clarena.commands.train import main

    calls: list[int] = []
    real = ConfigLoaderImpl.load_configuration

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)
    run = tmp_path / "run"
    code = main(
        [
            "cl_dataset.num_tasks=2",
            "trainer.max_epochs=-1",
            "trainer.max_steps=3",
            "trainer.enable_progress_bar=false",
            "logger=none",
            f"output_dir={run}",
        ]
    )
    assert code == 0 and len(calls) == 1
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert overrides[-1].startswith("output_dir=") and str(run) in overrides[-1]
    assert (run / ".hydra" / "config.yaml").exists()
    assert (run / "results" / "metrics.json").exists()

"""`clarena train ... update.old_model=<run folder>`: the deployed model is task 1 of the update,
untrained, and the old model of its compatibility; another architecture is refused in one line
before any folder is written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from test_train_support import clarena

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMMON = (
    "cl_dataset=update_digits",
    "cl_dataset.num_tasks=2",
    "scenario=DataIL",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "logger=none",
)


def test_an_update_of_a_deployed_model(tmp_path: Path) -> None:
    old = tmp_path / "deployed"
    proc = clarena("train", "cl_algorithm=finetuning", *COMMON, f"output_dir={old}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    deployed = json.loads((old / "results" / "metrics.json").read_text())
    weights = torch.load(old / "checkpoints" / "after_task_2.pt", weights_only=True)["cl_state"]

    new = tmp_path / "update"
    proc = clarena(
        "train",
        "cl_algorithm=bcwi",
        *COMMON,
        f"update.old_model={old}",
        f"output_dir={new}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # task 1 is the deployed model, untrained: its accuracy is the deployed run's final one
    update = json.loads((new / "results" / "metrics.json").read_text())
    assert update["accuracy_matrix"][0][0] == deployed["accuracy_matrix"][1][0]
    state = torch.load(new / "checkpoints" / "after_task_2.pt", weights_only=True)["cl_state"]
    for part in ("backbone", "heads"):
        for name, tensor in weights[part].items():
            assert torch.equal(state["h1"][part][name], tensor)
    assert 0.0 <= state["bcwi"]["2"]["alpha"] <= 1.0
    with (new / "results" / "compatibility.csv").open() as f:
        (row,) = [r for r in csv.DictReader(f) if r["test_task"] == "all"]
    assert (row["old_after_task"], row["new_after_task"]) == ("1", "2")
    assert int(row["old_correct"]) == round(deployed["accuracy_matrix"][1][0] * int(row["total"]))

    # a weights file of another architecture: one line, exit 2, no folder
    bad = tmp_path / "bad"
    proc = clarena(
        "train",
        "cl_algorithm=bcwi",
        *COMMON,
        "backbone.hidden_dims=[32]",
        f"update.old_model={old}",
        f"output_dir={bad}",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "does not fit the backbone" in lines[0]
    assert lines[0].startswith("clarena train: error: update.old_model: ")
    assert not bad.exists()

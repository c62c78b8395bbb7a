"""A focal-distillation run through `clarena train` on update_digits: its compatibility.csv holds
the flips of the update, recounted here from the saved models."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from test_train_support import clarena

from clarena.cl_algorithms import FocalDistillation
from clarena.run.components import build_components
from clarena.run.spec import RunSpec
from clarena.run_folder import checkpoint as ckpt

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("distance", ["kl", "lm"])
def test_focal_distillation_run_records_the_flips_of_its_update(
    tmp_path: Path, distance: str
) -> None:
    run = tmp_path / "run"
    proc = clarena(
        "train",
        "cl_algorithm=focal_distillation",
        f"cl_algorithm.distance={distance}",
        "cl_algorithm.lambda_c=2",
        "cl_dataset=update_digits",
        "cl_dataset.num_tasks=2",
        "scenario=DataIL",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"output_dir={run}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    # rebuild the run's algorithm; the checkpoint after task 2 holds the update and h1
    cfg = OmegaConf.load(run / "config.yaml")
    components = build_components(RunSpec.of(cfg))
    algorithm = components.algorithm
    assert isinstance(algorithm, FocalDistillation)
    assert type(algorithm.dissonance).__name__ == (
        "FocalDistillationKLReg" if distance == "kl" else "FocalDistillationLMReg"
    )
    state = ckpt.load_task_checkpoint(ckpt.task_checkpoint_path(run, 2))
    algorithm.load_cl_state_dict(state["cl_state"])
    algorithm.eval()
    datamodule = components.datamodule
    datamodule.setup_task(2)
    old_right, new_right = [], []
    with torch.no_grad():
        for x, y, task_ids in datamodule.task_test_dataloader(1):
            old_right.append(algorithm.h1(x, task_ids).argmax(1) == y)
            new_right.append(algorithm(x, task_ids).argmax(1) == y)
    old, new = torch.cat(old_right), torch.cat(new_right)
    # h1 is the model saved after task 1
    first = build_components(RunSpec.of(cfg)).algorithm
    first.load_cl_state_dict(
        ckpt.load_task_checkpoint(ckpt.task_checkpoint_path(run, 1))["cl_state"]
    )
    first.eval()
    with torch.no_grad():
        saved_right = [first(x, t).argmax(1) == y for x, y, t in datamodule.task_test_dataloader(1)]
    assert torch.equal(torch.cat(saved_right), old)
    negative_flips = int((old & ~new).sum())
    positive_flips = int((~old & new).sum())

    with (run / "results" / "compatibility.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["test_task"] == "all"]
    (row,) = [r for r in rows if (r["old_after_task"], r["new_after_task"]) == ("1", "2")]
    assert int(row["total"]) == old.numel()
    assert int(row["old_correct"]) == int(old.sum())
    assert int(row["new_correct"]) == int(new.sum())
    assert int(row["negative_flips"]) == negative_flips
    assert int(row["positive_flips"]) == positive_flips
    assert float(row["nfr"]) == pytest.approx(negative_flips / old.numel())

"""YAML-only compositions run through `clarena train`, and a `Composed` LwF / ER gives the accuracy
matrix of the shipped `lwf` / `er` on split_digits, identical for a fixed seed.

Identical, not close: the composition draws the same random numbers in the same order (the replay
draw comes from the buffer's own generator before the forward pass, as in `ER`; no term draws
from the global generator) and runs the same operations in the same order (the model on the
current batch concatenated with the replayed one; LwF's per-head distillation in TIL).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

pytestmark = pytest.mark.integration

TINY = ["trainer.max_epochs=-1", "trainer.max_steps=5", "cl_dataset.num_tasks=2", "seed=0"]


def _matrix(run: Path) -> list[list[float | None]]:
    return json.loads((run / "results" / "metrics.json").read_text())["accuracy_matrix"]


@pytest.mark.parametrize(
    ("name", "scenario"), [("lwf_bc", "DIL"), ("er_strict", "CIL"), ("ewc_lwf", "TIL")]
)
def test_a_yaml_composition_runs_through_clarena_train(
    name: str, scenario: str, tmp_path: Path
) -> None:
    from clarena.commands import train

    run = tmp_path / "run"
    args = [f"cl_algorithm={name}", f"scenario={scenario}", *TINY, f"output_dir={run}"]
    assert train.main([*args, "trainer.enable_progress_bar=false"]) == 0
    matrix = _matrix(run)
    assert len(matrix) == 2 and all(v is not None and 0 <= v <= 1 for v in matrix[1])
    saved = OmegaConf.load(run / "config.yaml")
    assert saved.cl_algorithm._target_ == "clarena.cl_algorithms.Composed"


STEPS = ["trainer.max_epochs=-1", "trainer.max_steps=30", "cl_dataset.num_tasks=3", "seed=0"]

LWF = {
    "_target_": "clarena.cl_algorithms.Composed",
    "terms": {
        "ce": {"_target_": "clarena.cl_algorithms.terms.CrossEntropy"},
        "distillation": {
            "_target_": "clarena.cl_algorithms.terms.Distillation",
            "regularizer": {
                "_target_": "clarena.cl_algorithms.regularizers.DistillationReg",
                "factor": 1.0,
                "temperature": 2.0,
            },
        },
    },
}
ER = {
    "_target_": "clarena.cl_algorithms.Composed",
    "terms": {
        "ce": {"_target_": "clarena.cl_algorithms.terms.CrossEntropy"},
        "replay_ce": {"_target_": "clarena.cl_algorithms.terms.ReplayCrossEntropy", "weight": 1.0},
    },
    "buffer_size": 200,
    "buffer_seed": "${seed}",
}


def _run(algorithm: str, scenario: str, run: Path, node: dict | None = None):
    from clarena.run.config import compose_config
    from clarena.run.spec import RunSpec
    from clarena.run.task_loop import run_experiment

    overrides = ["cl_dataset=split_digits", f"cl_algorithm={algorithm}", f"scenario={scenario}"]
    cfg = compose_config([*overrides, *STEPS, "logger=none", f"output_dir={run}"])
    if node is not None:
        with open_dict(cfg):
            cfg.cl_algorithm = OmegaConf.create(node)
    run.mkdir(parents=True)
    run_experiment(RunSpec.of(cfg, run))
    checkpoint = torch.load(next(run.rglob("after_task_3.pt")), weights_only=False)
    return checkpoint["cl_state"]["algorithm"], _matrix(run)


@pytest.mark.parametrize(
    ("algorithm", "scenario", "node"), [("lwf", "TIL", LWF), ("lwf", "CIL", LWF), ("er", "CIL", ER)]
)
def test_a_composed_equivalent_gives_the_shipped_accuracy_matrix(
    algorithm: str, scenario: str, node: dict, tmp_path: Path
) -> None:
    shipped_class, shipped = _run(algorithm, scenario, tmp_path / "shipped")
    composed_class, composed = _run(algorithm, scenario, tmp_path / "composed", node)
    assert (shipped_class, composed_class) == ({"lwf": "LwF", "er": "ER"}[algorithm], "Composed")
    assert composed == shipped
    assert len(shipped) == 3 and shipped[2][0] is not None

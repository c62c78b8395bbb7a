"""The van de Ven et al. (2022) protocol on real MNIST: in Class-IL, replay beats EWC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clarena.cl_datasets.paths import default_data_root
from clarena.cl_datasets.sources import _IDX_FILES
from clarena.run.config import compose_config, validate_config
from clarena.run.spec import RunSpec
from clarena.run.task_loop import run_experiment

RAW = default_data_root() / "MNIST" / "raw"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not all((RAW / f).is_file() or (RAW / f"{f}.gz").is_file() for f in _IDX_FILES),
        reason=f"needs the MNIST IDX files in {RAW}: bash .ci/fetch_mnist.sh <data_root>",
    ),
]


def _final_average_accuracy(experiment: str, run: Path) -> float:
    cfg = compose_config(
        [
            f"experiment={experiment}",
            f"output_dir={run}",
            "seed=1",
            "trainer.max_steps=500",  # of the protocol's 2000 per task
            "trainer.enable_progress_bar=false",
            "logger=none",
        ]
    )
    validate_config(cfg)
    run.mkdir()
    run_experiment(RunSpec.of(cfg, run))
    metrics = json.loads((run / "results" / "metrics.json").read_text())
    assert metrics["scenario"] == "CIL" and len(metrics["accuracy_matrix"]) == 5
    return float(metrics["summary"]["average_accuracy"])


def test_class_incremental_replay_beats_ewc_by_twenty_points(tmp_path: Path) -> None:
    # The paper's finding on split MNIST: in Class-IL, parameter regularisation keeps about one
    # task in five (near 20 %) while a small replay memory keeps most of them.
    ewc = _final_average_accuracy("vdv2022_ewc_cil", tmp_path / "ewc")
    er = _final_average_accuracy("vdv2022_er_cil", tmp_path / "er")
    assert er > ewc + 0.20, f"ER {er:.4f} vs EWC {ewc:.4f}"

"""The speed work changes no result: fixed-seed accuracy matrices equal the recorded ones.

`tests/data/accuracy_matrices_split_digits.json` holds the accuracy matrices of finetuning, LwF,
EWC and ER on `split_digits` (TIL and CIL, seed 0, 60 optimizer steps per task, the default
MLP, Adam and callbacks), produced by this file's `__main__` on the code of commit 3b9e65f, before
the per-step logging and the non-finite check moved into the training step:

    git archive 3b9e65f | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base CLARENA_COMMIT=3b9e65f OMP_NUM_THREADS=1 \\
        python tests/integration/test_results_unchanged.py

The matrices must be identical, not merely close: the training step still draws the same random
numbers in the same order (the data order, dropout and replay draws are untouched; logging and the
finiteness check only read the loss terms), so every float is the same.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "accuracy_matrices_split_digits.json"
ALGORITHMS = ("finetuning", "lwf", "ewc", "er")
SCENARIOS = ("TIL", "CIL")
STEPS = 60


def overrides(algorithm: str, scenario: str, run: Path) -> list[str]:
    """The command line of one recorded run (`clarena train` accepts the same overrides)."""
    return [
        "cl_dataset=split_digits",
        f"cl_algorithm={algorithm}",
        f"scenario={scenario}",
        "seed=0",
        "trainer.max_epochs=-1",
        f"trainer.max_steps={STEPS}",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"output_dir={run}",
    ]


def accuracy_matrix(algorithm: str, scenario: str, run: Path) -> list[list[float | None]]:
    """Run one experiment in this process and return its accuracy matrix from `metrics.json`."""
    from clarena.pipelines.config import compose_config
    from clarena.pipelines.task_loop import run_experiment

    cfg = compose_config(overrides(algorithm, scenario, run))
    run.mkdir(parents=True)
    run_experiment(cfg, run)
    return json.loads((run / "results" / "metrics.json").read_text())["accuracy_matrix"]


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_accuracy_matrix_is_the_recorded_one(algorithm: str, scenario: str, tmp_path: Path) -> None:
    recorded = json.loads(DATA.read_text())["matrices"][f"{algorithm}/{scenario}"]
    assert accuracy_matrix(algorithm, scenario, tmp_path / "run") == recorded


def _record(out: Path) -> None:
    import os
    import tempfile

    matrices = {}
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in ALGORITHMS:
            for scenario in SCENARIOS:
                key = f"{algorithm}/{scenario}"
                matrices[key] = accuracy_matrix(algorithm, scenario, Path(tmp) / key)
                print(key, matrices[key][-1], file=sys.stderr)
    payload = {
        "about": "accuracy matrices (after task i, test on task j) of clarena train "
        + " ".join(overrides("<algorithm>", "<scenario>", Path("<dir>"))[:-1]),
        "commit": os.environ.get("CLARENA_COMMIT", "unknown"),
        "matrices": matrices,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    _record(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA)

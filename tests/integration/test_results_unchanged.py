"""The speed work changes no result: fixed-seed accuracy matrices equal the recorded ones.

`tests/data/accuracy_matrices_split_digits.json` holds the accuracy matrices of finetuning, LwF,
EWC and ER on `split_digits` (TIL and CIL, seed 0, 60 optimizer steps per task, the default
MLP, Adam and callbacks), produced by this file's `__main__` on the code of commit 3b9e65f, before
the per-step logging and the non-finite check moved into the training step:

    git archive 3b9e65f | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base CLARENA_COMMIT=3b9e65f OMP_NUM_THREADS=1 \\
        python tests/integration/test_results_unchanged.py

The key `later` holds the other shipped algorithms (`LATER`), recorded on commit 24466c8 before
EWC, SI, MAS, DER, DER++ and the BC algorithms became compositions of terms:

    git archive 24466c8 | tar -x -C /tmp/base24
    PYTHONPATH=/tmp/base24 CLARENA_COMMIT=24466c8 OMP_NUM_THREADS=1 \\
        python tests/integration/test_results_unchanged.py --later

The matrices must be identical, not merely close: the training step still draws the same random
numbers in the same order (the data order, dropout and replay draws are untouched; logging and the
finiteness check only read the loss terms; the compositions run their forward passes and buffer
draws in the order of the classes they replaced), so every float is the same.
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
LATER: dict[str, tuple[str, ...]] = {
    "si": SCENARIOS,
    "mas": SCENARIOS,
    "der": SCENARIOS,
    "derpp": SCENARIOS,
    "bc_new_error": (*SCENARIOS, "DIL"),
    "strict_imitation": (*SCENARIOS, "DIL"),
    "focal_distillation": (*SCENARIOS, "DIL"),
    "joint": SCENARIOS,
    "agem": SCENARIOS,
    "icarl": ("CIL",),
    "hat": ("TIL",),
}
"""The algorithms recorded later (key `later` of the data file, its own commit, 24466c8), before
EWC, SI, MAS, DER, DER++ and the BC algorithms became compositions of terms: their scenarios (the
others, Joint already a composition, A-GEM, iCaRL and HAT with their own classes, guard the shared
base). The BC algorithms run with a 100-sample buffer in TIL and CIL (they need one there) and
without one in DIL."""
BC = ("bc_new_error", "strict_imitation", "focal_distillation")
RUNS = [(a, s) for a in ALGORITHMS for s in SCENARIOS] + [
    (a, s) for a, scenarios in LATER.items() for s in scenarios
]


def overrides(algorithm: str, scenario: str, run: Path) -> list[str]:
    """The command line of one recorded run (`clarena train` accepts the same overrides)."""
    extra = ["cl_algorithm.buffer_size=100"] if algorithm in BC and scenario != "DIL" else []
    return [
        "cl_dataset=split_digits",
        f"cl_algorithm={algorithm}",
        f"scenario={scenario}",
        *extra,
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


def recorded(algorithm: str, scenario: str) -> list[list[float | None]]:
    """The recorded matrix of one run."""
    data = json.loads(DATA.read_text())
    key = f"{algorithm}/{scenario}"
    if algorithm in LATER:
        return data["later"]["matrices"][key]
    return data["matrices"][key]


@pytest.mark.parametrize(("algorithm", "scenario"), RUNS)
def test_accuracy_matrix_is_the_recorded_one(algorithm: str, scenario: str, tmp_path: Path) -> None:
    assert accuracy_matrix(algorithm, scenario, tmp_path / "run") == recorded(algorithm, scenario)


def _record(out: Path, later_only: bool) -> None:
    """Write the matrices of `RUNS` (with `later_only`: only those of `LATER`, under `later`)."""
    import os
    import tempfile

    runs = [(a, s) for a, s in RUNS if a in LATER] if later_only else RUNS
    matrices = {}
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm, scenario in runs:
            key = f"{algorithm}/{scenario}"
            matrices[key] = accuracy_matrix(algorithm, scenario, Path(tmp) / key)
            print(key, matrices[key][-1], file=sys.stderr)
    commit = os.environ.get("CLARENA_COMMIT", "unknown")
    if later_only:
        payload = json.loads(out.read_text())
        payload["later"] = {"commit": commit, "matrices": matrices}
    else:
        payload = {
            "about": "accuracy matrices (after task i, test on task j) of clarena train "
            + " ".join(overrides("<algorithm>", "<scenario>", Path("<dir>"))[:-1]),
            "commit": commit,
            "matrices": {k: v for k, v in matrices.items() if k.split("/")[0] not in LATER},
            "later": {
                "commit": commit,
                "matrices": {k: v for k, v in matrices.items() if k.split("/")[0] in LATER},
            },
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--later"]
    _record(Path(args[0]) if args else DATA, later_only="--later" in sys.argv)

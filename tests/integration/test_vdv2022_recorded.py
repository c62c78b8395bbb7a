"""The van de Ven et al. (2022) protocol gives its recorded results: fixed-seed accuracy matrices of
one Domain-IL and one Class-IL experiment on real MNIST, at a reduced budget, equal to the bit.

`tests/data/accuracy_matrices_vdv2022.json` holds the accuracy matrices of `RUNS` (seed 11, whose
class order is (8, 6), (2, 7), (4, 5), (3, 0), (1, 9); `STEPS` iterations per context instead of
2000), produced by this file's `__main__` on the protocol of issue 38 (the reference's class order,
Class-IL with all 10 output units active):

    OMP_NUM_THREADS=1 CLARENA_COMMIT=<commit> python tests/integration/test_vdv2022_recorded.py

They guard what a change of the training loop, the data path or the algorithms must not move: the
same random draws in the same order give the same floats. Equality holds on the same numerics
(`numerics_fingerprint` of `test_results_unchanged.py`); the matrices are kept per fingerprint,
and numerics not recorded are held to `CELL_TOLERANCE`. Recording another CPU's numerics on the
code of the recorded commit: the command above with `--numerics` (the second entry was recorded
so, with `ATEN_CPU_CAPABILITY=default`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_results_unchanged import numerics_fingerprint

from clarena.cl_datasets.paths import default_data_root
from clarena.cl_datasets.sources import _IDX_FILES
from clarena.run.spec import RunSpec

DATA = Path(__file__).resolve().parents[1] / "data" / "accuracy_matrices_vdv2022.json"
RAW = default_data_root() / "MNIST" / "raw"
RUNS = ("vdv2022_ewc_dil", "vdv2022_er_cil")
"""EWC in Domain-IL (the cell the class order moved most) and ER in Class-IL (replay over the
all-active 10-unit head)."""
SEED = 11
STEPS = 100
CELL_TOLERANCE = 0.02
"""On numerics not recorded: the most a cell may differ (PyTorch's portable kernels,
`ATEN_CPU_CAPABILITY=default`, against AVX2 on the same CPU moved cells by at most 0.005: both are
recorded)."""

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not all((RAW / f).is_file() or (RAW / f"{f}.gz").is_file() for f in _IDX_FILES),
        reason=f"needs the MNIST IDX files in {RAW}: bash .ci/fetch_mnist.sh <data_root>",
    ),
]


def overrides(experiment: str, run: Path) -> list[str]:
    """The command line of one recorded run (`clarena train` accepts the same overrides)."""
    return [
        f"experiment={experiment}",
        f"seed={SEED}",
        f"trainer.max_steps={STEPS}",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"output_dir={run}",
    ]


def accuracy_matrix(experiment: str, run: Path) -> list[list[float | None]]:
    """Run one experiment in this process and return its accuracy matrix from `metrics.json`."""
    from clarena.run.config import compose_config
    from clarena.run.task_loop import run_experiment

    run.mkdir(parents=True)
    run_experiment(RunSpec.of(compose_config(overrides(experiment, run)), run))
    return json.loads((run / "results" / "metrics.json").read_text())["accuracy_matrix"]


def recorded() -> dict[str, dict[str, list[list[float | None]]]]:
    """Fingerprint → experiment → the recorded matrix."""
    numerics = json.loads(DATA.read_text())["numerics"]
    return {fingerprint: entry["matrices"] for fingerprint, entry in numerics.items()}


@pytest.mark.parametrize("experiment", RUNS)
def test_accuracy_matrix_is_the_recorded_one(experiment: str, tmp_path: Path) -> None:
    got = accuracy_matrix(experiment, tmp_path / "run")
    matrices = recorded()
    fingerprint = numerics_fingerprint()
    if fingerprint in matrices:
        assert got == matrices[fingerprint][experiment]
        return
    # numerics not recorded: another CPU's kernels round differently, so close, not equal
    cells = _cell_gaps(got, next(iter(matrices.values()))[experiment])
    assert max(cells) <= CELL_TOLERANCE, (
        f"numerics {fingerprint}: a cell moved {max(cells):.4f}; record them as the module "
        "docstring says"
    )


def _cell_gaps(a: list[list[float | None]], b: list[list[float | None]]) -> list[float]:
    return [
        abs(x - y)
        for row_a, row_b in zip(a, b, strict=True)
        for x, y in zip(row_a, row_b, strict=True)
        if x is not None and y is not None
    ]


def test_the_recorded_numerics_differ_within_the_tolerance() -> None:
    first, *others = recorded().values()
    assert others, "a second numerics shows what the tolerance must take"
    for matrices in others:
        for experiment in RUNS:
            gaps = _cell_gaps(matrices[experiment], first[experiment])
            assert 0 < max(gaps) <= CELL_TOLERANCE


def _record(numerics_only: bool) -> None:
    import os
    import platform
    import tempfile

    import torch

    payload = (
        json.loads(DATA.read_text())
        if numerics_only
        else {
            "about": "accuracy matrices (after context i, test on context j) of clarena train "
            + " ".join(overrides("<experiment>", Path("<dir>"))[:-1]),
            "commit": os.environ.get("CLARENA_COMMIT", "unknown"),
            "numerics": {},
        }
    )
    matrices = {}
    with tempfile.TemporaryDirectory() as tmp:
        for experiment in RUNS:
            matrices[experiment] = accuracy_matrix(experiment, Path(tmp) / experiment)
            print(experiment, matrices[experiment][-1], file=sys.stderr)
    payload["numerics"][numerics_fingerprint()] = {
        "cpu": f"{platform.machine()}, {torch.backends.cpu.get_cpu_capability()} kernels",
        "torch": torch.__version__,
        "matrices": matrices,
    }
    DATA.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    _record(numerics_only="--numerics" in sys.argv[1:])

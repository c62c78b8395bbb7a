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

Every float is the same *on the same numerics*: MKL and PyTorch pick their CPU kernels by the
instruction set, so another CPU sums in another order and a prediction near a tie can flip. The
matrices above were recorded on the AMD EPYC VM of the earlier sessions. The key `numerics`
holds, by `numerics_fingerprint()` (a hash of a few kernels' output bits and the torch version),
the matrices the same reference commits gave on other numerics, where they differ from the
first set (the rest were recorded too and are equal); the entry of the first set's own numerics
(AVX2 kernels, `2e70e3aca7563e2c`) has none. On recorded numerics the test demands
equality; on numerics not recorded it demands each cell within `CELL_TOLERANCE` and the matrix's
mean within `MEAN_TOLERANCE` of the first set, and its message names the command that records
them. Recording a CPU (each reference commit's code, once):

    PYTHONPATH=/tmp/base CLARENA_COMMIT=3b9e65f OMP_NUM_THREADS=1 \\
        python tests/integration/test_results_unchanged.py --numerics
    PYTHONPATH=/tmp/base24 CLARENA_COMMIT=24466c8 OMP_NUM_THREADS=1 \\
        python tests/integration/test_results_unchanged.py --numerics --later
"""

from __future__ import annotations

import hashlib
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
    from clarena.run.config import compose_config
    from clarena.run.spec import RunSpec
    from clarena.run.task_loop import run_experiment

    cfg = compose_config(overrides(algorithm, scenario, run))
    run.mkdir(parents=True)
    run_experiment(RunSpec.of(cfg, run))
    return json.loads((run / "results" / "metrics.json").read_text())["accuracy_matrix"]


CELL_TOLERANCE = 0.035
"""On numerics not recorded: the most a cell may differ (3 of the ~89 test samples of a
split_digits task; the AVX-512 numerics moved two cells by 2 samples)."""
MEAN_TOLERANCE = 0.005
"""On numerics not recorded: the most the mean over a matrix's filled cells may differ (0.5
points; the AVX-512 numerics moved it by at most 0.38)."""


def numerics_fingerprint() -> str:
    """A hash of the output bits of the kernels the runs lean on (MKL's matrix product, PyTorch's
    vectorised softmax, sums and distances) and of the torch version: equal fingerprints, equal
    floats. The thread count does not enter (the same on 1 and 2 threads here)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 784, generator=gen)
    h = torch.nn.functional.linear(x, torch.randn(400, 784, generator=gen))
    parts = (h, torch.log_softmax(h, dim=1), h.sum(0), torch.cdist(h[:16], h[16:48]))
    digest = hashlib.sha256(torch.__version__.encode())
    for part in parts:
        digest.update(part.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def recorded(
    algorithm: str, scenario: str, fingerprint: str | None = None
) -> list[list[float | None]]:
    """The recorded matrix of one run: the first set's, or the one recorded on the numerics
    `fingerprint` where that differs."""
    data = json.loads(DATA.read_text())
    key = f"{algorithm}/{scenario}"
    other = data.get("numerics", {}).get(fingerprint, {}).get("matrices", {})
    if key in other:
        return other[key]
    if algorithm in LATER:
        return data["later"]["matrices"][key]
    return data["matrices"][key]


def recorded_numerics() -> set[str]:
    """The fingerprints of the numerics the matrices were recorded on."""
    return set(json.loads(DATA.read_text()).get("numerics", {}))


def _filled(matrix: list[list[float | None]]) -> list[float]:
    return [a for row in matrix for a in row if a is not None]


def close_enough(got: list[list[float | None]], expected: list[list[float | None]]) -> str:
    """Why `got` is not within the tolerances of `expected` (numerics not recorded), or ""."""
    if [[a is None for a in row] for row in got] != [[a is None for a in row] for row in expected]:
        return "the filled cells differ"
    cells = list(zip(_filled(got), _filled(expected), strict=True))
    worst = max(abs(a - b) for a, b in cells)
    mean_gap = abs(sum(a - b for a, b in cells)) / len(cells)
    if worst > CELL_TOLERANCE:
        return f"a cell moved {worst:.4f} (at most {CELL_TOLERANCE})"
    if mean_gap > MEAN_TOLERANCE:
        return f"the mean moved {mean_gap:.4f} (at most {MEAN_TOLERANCE})"
    return ""


@pytest.mark.parametrize(("algorithm", "scenario"), RUNS)
def test_accuracy_matrix_is_the_recorded_one(algorithm: str, scenario: str, tmp_path: Path) -> None:
    got = accuracy_matrix(algorithm, scenario, tmp_path / "run")
    fingerprint = numerics_fingerprint()
    expected = recorded(algorithm, scenario, fingerprint)
    if fingerprint in recorded_numerics() or got == expected:
        assert got == expected
        return
    # numerics not recorded: another CPU's kernels round differently, so close, not equal
    why = close_enough(got, expected)
    assert not why, f"numerics {fingerprint}: {why}; record them as the module docstring says"


def test_the_tolerances_take_the_recorded_numerics_and_no_more() -> None:
    """Every matrix of the other recorded numerics is within the tolerances of the first set's;
    3 test samples fewer in every cell of the last row, or 4 in one cell, are not."""
    data = json.loads(DATA.read_text())
    other = [(k, m) for entry in data["numerics"].values() for k, m in entry["matrices"].items()]
    assert other
    for key, matrix in other:
        assert close_enough(matrix, recorded(*key.split("/"))) == ""
    first = recorded("finetuning", "TIL")
    shifted = [[None if a is None else a - 4 / 89 * (i == j) for j, a in enumerate(row)]
               for i, row in enumerate(first)]  # fmt: skip
    assert close_enough(shifted, first).startswith("a cell moved 0.0449")
    last = len(first) - 1
    lowered = [[None if a is None else a - 3 / 89 * (i == last) for a in row]
               for i, row in enumerate(first)]  # fmt: skip
    assert close_enough(lowered, first).startswith("the mean moved 0.0112")
    assert close_enough([row[:-1] for row in first], first) == "the filled cells differ"


def test_the_numerics_fingerprint_does_not_depend_on_the_thread_count() -> None:
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = numerics_fingerprint()
        torch.set_num_threads(2)
        assert numerics_fingerprint() == one
    finally:
        torch.set_num_threads(threads)


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


def _record_numerics(out: Path, later: bool) -> None:
    """Record this machine's numerics: run the first set's runs (with `later`: those of `LATER`)
    and keep, under `numerics` → this fingerprint, the matrices that differ from the first set."""
    import os
    import platform
    import tempfile

    import torch

    payload = json.loads(out.read_text())
    entry = payload.setdefault("numerics", {}).setdefault(
        numerics_fingerprint(), {"matrices": {}, "recorded": {}}
    )
    entry["cpu"] = f"{platform.machine()}, {torch.backends.cpu.get_cpu_capability()} kernels"
    entry["torch"] = torch.__version__
    first = payload["later"]["matrices"] if later else payload["matrices"]
    runs = [(a, s) for a, s in RUNS if (a in LATER) == later]
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm, scenario in runs:
            key = f"{algorithm}/{scenario}"
            matrix = accuracy_matrix(algorithm, scenario, Path(tmp) / key)
            print(key, "differs" if matrix != first[key] else "equal", file=sys.stderr)
            if matrix != first[key]:
                entry["matrices"][key] = matrix
    entry["recorded"]["later" if later else "first"] = os.environ.get("CLARENA_COMMIT", "unknown")
    out.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a not in ("--later", "--numerics")]
    target = Path(args[0]) if args else DATA
    if "--numerics" in sys.argv:
        _record_numerics(target, later="--later" in sys.argv)
    else:
        _record(target, later_only="--later" in sys.argv)

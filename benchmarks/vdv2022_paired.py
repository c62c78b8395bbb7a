"""Paired runs of the van de Ven et al. (2022) split-MNIST cells: the reference code and clarena.

For each (method, scenario, seed) this runs the reference implementation
(GMvandeVen/continual-learning, unmodified, one thread) and `clarena train
experiment=vdv2022_<method>_<scenario> seed=<seed>` on the same seed, hence the same class order
(`cl_dataset.shuffle_classes: vdv2022`), one after the other, and appends one row per side to a
CSV: the final accuracy on each context, their average and the wall time. `--summary` prints the
paired table: per cell, both means ± sem over the seeds that both sides finished, and the mean
paired difference (clarena − reference) ± sem.

    python benchmarks/vdv2022_paired.py --reference <checkout of continual-learning> \
        --data-dir <dir holding MNIST/MNIST/raw> --cells ewc:domain si:domain --seeds 2 3 4 5 6
    python benchmarks/vdv2022_paired.py --summary

With `--runs DIR` clarena's run folders are kept (`clarena report DIR` then gives the table over
seeds, forgetting included, from the same runs); `--sides clarena` adds seeds on clarena's side
alone.

The reference is read from a checkout that is not part of this repository (fetch it yourself);
nothing of it is copied here.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "vdv2022_paired.csv"
FIELDS = ("side", "method", "scenario", "seed", "average", "per_context", "seconds")
SCENARIOS = {"task": "til", "domain": "dil", "class": "cil"}
# the reference's main.py flags per method, as its compare.py runs each method (main.py's own
# defaults differ for two: compare.py runs iCaRL with --active-classes=all-so-far where main.py's
# default is all, and Joint for contexts x iters iterations in one go)
REFERENCE_FLAGS = {
    "finetuning": [],
    "joint": ["--joint", "--iters=10000"],
    "ewc": ["--ewc"],
    "si": ["--si"],
    "lwf": ["--lwf"],
    "er": ["--replay=buffer"],
    "agem": ["--agem"],
    "icarl": ["--icarl", "--active-classes=all-so-far"],
}
NAMES = {
    "finetuning": "None",
    "joint": "Joint",
    "ewc": "EWC",
    "si": "SI",
    "lwf": "LwF",
    "er": "ER",
    "agem": "A-GEM",
    "icarl": "iCaRL",
}
"""How the paper names each method."""
CONTEXT_LINE = re.compile(r"^ - Context (\d+): ([0-9.]+)\s*$", re.MULTILINE)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def reference_command(data_dir: Path, method: str, scenario: str, seed: int) -> list[str]:
    """The reference's command line (run in its checkout) for one cell and seed."""
    command = [sys.executable, "main.py", "--experiment=splitMNIST", f"--scenario={scenario}"]
    command += [*REFERENCE_FLAGS[method], f"--seed={seed}", "--no-gpus", f"--data-dir={data_dir}"]
    return [*command, "--no-save"]


def run_reference(
    checkout: Path, data_dir: Path, method: str, scenario: str, seed: int
) -> list[float]:
    """The reference's final accuracy on each context, parsed from what its main.py prints."""
    command = reference_command(data_dir, method, scenario, seed)
    done = subprocess.run(command, cwd=checkout, env=_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the reference failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    found = sorted((int(k), float(v)) for k, v in CONTEXT_LINE.findall(done.stdout))
    if [k for k, _ in found] != [1, 2, 3, 4, 5]:
        raise SystemExit(f"the reference printed no per-context accuracies: {' '.join(command)}")
    return [v for _, v in found]


def run_clarena(method: str, scenario: str, seed: int, runs: Path | None = None) -> list[float]:
    """clarena's final accuracy on each context: the last row of its accuracy matrix.

    With `runs`, the run folder is kept as `runs/vdv2022_<method>_<scenario>_seed<seed>`, so that
    `clarena report runs` gives the table over seeds (with forgetting) from the same runs; a
    folder that finished is read again, one that was interrupted is resumed.
    """
    with tempfile.TemporaryDirectory() as tmp:
        experiment = f"vdv2022_{method}_{SCENARIOS[scenario]}"
        run = (runs if runs is not None else Path(tmp)) / f"{experiment}_seed{seed}"
        matrix = run / "results" / "accuracy_matrix.csv"
        command = [sys.executable, "-m", "clarena", "train"]
        if (run / "config.yaml").exists():
            command += [f"resume={run}"]
        else:
            command += [f"experiment={experiment}", f"seed={seed}", f"output_dir={run}"]
        if not matrix.exists() or len(_rows(matrix)) < 5:
            done = subprocess.run(command, env=_env(), capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"clarena failed: {' '.join(command)}\n{done.stderr[-2000:]}")
        last = _rows(matrix)[-1]
    return [float(last[f"test_on_task_{k}"]) for k in range(1, 6)]


def _rows(matrix: Path) -> list[dict[str, str]]:
    with open(matrix, newline="") as f:
        return list(csv.DictReader(f))


def append(row: dict[str, object], results: Path = RESULTS) -> None:
    new = not results.exists()
    with open(results, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(row)


def measure(args: argparse.Namespace) -> None:
    for cell in args.cells:
        method, scenario = cell.split(":")
        for seed in args.seeds:
            for side in args.sides:
                start = time.monotonic()
                if side == "reference":
                    where = (args.reference, args.data_dir)
                    accuracies = run_reference(*where, method, scenario, seed)
                else:
                    accuracies = run_clarena(method, scenario, seed, args.runs)
                seconds = time.monotonic() - start
                average = 100 * sum(accuracies) / len(accuracies)
                append(
                    {
                        "side": side,
                        "method": method,
                        "scenario": scenario,
                        "seed": seed,
                        "average": f"{average:.2f}",
                        "per_context": " ".join(f"{100 * a:.2f}" for a in accuracies),
                        "seconds": f"{seconds:.0f}",
                    },
                    args.results,
                )
                print(f"{side} {method} {scenario} seed {seed}: {average:.2f} % in {seconds:.0f} s")


def _mean_sem(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var / len(values))


def summary(results: Path = RESULTS) -> str:
    """The paired table in Markdown over the seeds both sides finished."""
    with open(results, newline="") as f:
        rows = list(csv.DictReader(f))
    cells: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for row in rows:
        sides = cells.setdefault((row["method"], row["scenario"]), {"reference": {}, "clarena": {}})
        sides[row["side"]][int(row["seed"])] = float(row["average"])
    lines = [
        "| cell | seeds (n) | reference | clarena | clarena − reference | within 1 pt or 2 sem |",
        "|---|---|---|---|---|---|",
    ]
    for (method, scenario), sides in sorted(cells.items()):
        seeds = sorted(set(sides["reference"]) & set(sides["clarena"]))
        if not seeds:
            continue
        ref = [sides["reference"][s] for s in seeds]
        ours = [sides["clarena"][s] for s in seeds]
        diff = [o - r for o, r in zip(ours, ref, strict=True)]
        stats = [_mean_sem(values) for values in (ref, ours, diff)]
        if len(seeds) < 2:  # no standard error from one seed
            cols = [f"{m:.2f}" for m, _ in stats]
            meets = "– (one seed)"
        else:
            cols = [f"{m:.2f} ± {e:.2f}" for m, e in stats]
            mean, sem = stats[2]
            meets = "yes" if abs(mean) <= 1 or abs(mean) <= 2 * sem else "no"
        label = f"{NAMES[method]} {scenario.capitalize()}-IL"
        seed_list = ", ".join(map(str, seeds))
        lines.append(f"| {label} | {seed_list} ({len(seeds)}) | {' | '.join(cols)} | {meets} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="checkout of GMvandeVen/continual-learning")
    parser.add_argument("--data-dir", type=Path, help="the reference's --data-dir")
    parser.add_argument("--cells", nargs="+", default=[], help="method:scenario, e.g. si:domain")
    parser.add_argument("--seeds", nargs="+", type=int, default=[2, 3, 4, 5, 6])
    parser.add_argument(
        "--sides",
        nargs="+",
        choices=("reference", "clarena"),
        default=["reference", "clarena"],
        help="which sides to run (clarena alone: more seeds for the table over seeds)",
    )
    parser.add_argument("--runs", type=Path, help="keep clarena's run folders here")
    parser.add_argument("--summary", action="store_true", help="print the paired table")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the CSV (appended to)")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.results))
        return
    if "reference" in args.sides and (args.reference is None or args.data_dir is None):
        parser.error("--reference and --data-dir are needed to measure")
    for cell in args.cells:
        method, _, scenario = cell.partition(":")
        if method not in REFERENCE_FLAGS or scenario not in SCENARIOS:
            parser.error(f"unknown cell {cell!r}: method:scenario, scenario task|domain|class")
    measure(args)


if __name__ == "__main__":
    main()

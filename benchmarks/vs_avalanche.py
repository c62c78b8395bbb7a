"""Whole-process wall and CPU time of `clarena train` against Avalanche on one protocol.

Split Fashion-MNIST (Debian's `dataset-fashion-mnist`), 5 experiences of 2 classes in class order
0..9, class-incremental, the 2×400 ReLU MLP, Adam (lr 1e-3), batches of 128, one epoch per task,
seed 0, and after every task a test on the whole test stream (all 10,000 test images; clarena
tests the tasks seen so far, Avalanche its usual `eval(test_stream)` of every experience).

- **clarena**: `clarena train cl_dataset=split_fmnist cl_dataset.batch_size=128
  cl_dataset.val_fraction=0 backbone=mlp_2x400 cl_algorithm=<a> scenario=CIL seed=0
  trainer.max_epochs=1 logger=none trainer.enable_progress_bar=false`, with its results files,
  plots and checkpoints.
- **Avalanche** (`avalanche-lib`, the `avalanche` extra): `nc_benchmark` over the normalised IDX
  tensors, a 784-400-400-10 ReLU MLP, the strategy `Naive`, `LwF(alpha=1, temperature=2)`,
  `EWC(ewc_lambda=1000, mode="online", decay_factor=1)` or `Naive` with
  `ReplayPlugin(mem_size=200)`, `EvaluationPlugin(accuracy_metrics(experience=True, stream=True))`
  with no loggers, `train(experience)` then `eval(test_stream)` per experience.

Method pairs: naive = clarena `finetuning`, lwf = `lwf` (distillation factor 1, T = 2), ewc =
`ewc` (online, λ = 1000, γ = 1, Fisher over every training sample, where Avalanche squares
mini-batch gradients), er = `er` with `cl_algorithm.memory_size=200` (a memory of 200 filled at
each task's end and shared evenly by the classes seen, replay batch = batch size; Avalanche's
replay plugin keeps an experience-balanced buffer of 200, filled at each experience's end, and
draws a replay batch of the same size), er_reservoir = clarena's default `er` (a reservoir buffer
of 200 over the stream) against the same Avalanche plugin. The final accuracy is the mean
accuracy over the 10,000 test images after the last task.

    OMP_NUM_THREADS=1 python benchmarks/vs_avalanche.py --methods naive lwf ewc er --repeats 1

The Avalanche process runs as if TensorFlow were not installed (`avalanche_run`: it would
otherwise import it through `torch.utils.tensorboard`, about 3 s; `--avalanche-imports-tensorflow`
keeps that import, as the rounds before the sixth of `benchmarks/README.md` measured).

The `clarena` command sets glibc's malloc to keep freed memory for reuse (`clarena.cli`);
`--same-malloc` gives the Avalanche process the same settings through glibc's environment
variables. It prints a Markdown table of the medians and their ratios (clarena / Avalanche).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FMNIST = Path("/usr/share/datasets/fashion-mnist")
CLARENA_ALGORITHM = {
    "naive": "finetuning",
    "lwf": "lwf",
    "ewc": "ewc",
    "er": "er",
    "er_reservoir": "er",
}
CLARENA_EXTRA = {"er": ["cl_algorithm.memory_size=200"]}  # Avalanche's memory policy


def _idx(path: Path):
    import numpy as np

    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def avalanche_run(method: str, seed: int, tensorflow: bool = False) -> None:
    """The Avalanche side (run in its own process by `main`); prints the final accuracy.

    Avalanche imports `torch.utils.tensorboard`, whose `_embedding` module imports TensorFlow
    whenever it is installed (it is here: clarena's `tensorflow` extra), about 3 s of a run that
    an Avalanche user without TensorFlow never pays. Unless `tensorflow`, the import is refused
    as if TensorFlow were not installed (tensorboard then uses its own stub)."""
    if not tensorflow:
        sys.modules.setdefault("tensorflow", None)  # type: ignore[arg-type]
    import torch
    from avalanche.benchmarks import nc_benchmark
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training import EWC, LwF, Naive
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
    from torch import nn
    from torch.utils.data import TensorDataset

    torch.manual_seed(seed)
    data = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = torch.from_numpy(_idx(FMNIST / f"{prefix}-images-idx3-ubyte.gz").copy()).float()
        y = torch.from_numpy(_idx(FMNIST / f"{prefix}-labels-idx1-ubyte.gz").copy()).long()
        data[split] = (x / 255, y)
    mean, std = data["train"][0].mean(), data["train"][0].std()
    sets = {k: TensorDataset(((x - mean) / std).unsqueeze(1), y) for k, (x, y) in data.items()}
    benchmark = nc_benchmark(
        sets["train"],
        sets["test"],
        n_experiences=5,
        task_labels=False,
        seed=seed,
        fixed_class_order=list(range(10)),
    )
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 400),
        nn.ReLU(),
        nn.Linear(400, 400),
        nn.ReLU(),
        nn.Linear(400, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    common = {
        "model": model,
        "optimizer": optimizer,
        "criterion": nn.CrossEntropyLoss(),
        "train_mb_size": 128,
        "train_epochs": 1,
        "eval_mb_size": 512,
        "evaluator": EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[]),
    }
    if method == "naive":
        strategy = Naive(**common)
    elif method == "lwf":
        strategy = LwF(alpha=1.0, temperature=2.0, **common)
    elif method == "ewc":
        strategy = EWC(ewc_lambda=1000.0, mode="online", decay_factor=1.0, **common)
    elif method in ("er", "er_reservoir"):
        strategy = Naive(plugins=[ReplayPlugin(mem_size=200)], **common)
    else:
        raise SystemExit(f"unknown method {method!r}")
    results = {}
    for experience in benchmark.train_stream:
        strategy.train(experience)
        results = strategy.eval(benchmark.test_stream)
    key = next(k for k in results if k.startswith("Top1_Acc_Stream/eval_phase/test_stream"))
    print(json.dumps({"accuracy": float(results[key])}))


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def _clarena_accuracy(run: Path) -> float:
    matrix = json.loads((run / "results" / "metrics.json").read_text())["accuracy_matrix"]
    last = [a for a in matrix[-1] if a is not None]
    return sum(last) / len(last)


def main(argv: list[str] | None = None) -> int:
    """Run the pairs alternately and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["naive", "lwf", "ewc", "er"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--avalanche", help=argparse.SUPPRESS)
    parser.add_argument(
        "--avalanche-imports-tensorflow",
        action="store_true",
        help="let the Avalanche process import TensorFlow (through torch.utils.tensorboard) when "
        "it is installed; by default it runs as if TensorFlow were not installed",
    )
    parser.add_argument(
        "--same-malloc",
        action="store_true",
        help="give the Avalanche process the malloc settings the clarena command applies to itself",
    )
    args = parser.parse_args(argv)
    if args.avalanche:
        avalanche_run(args.avalanche, args.seed, args.avalanche_imports_tensorflow)
        return 0
    env = {k: v for k, v in os.environ.items() if k != "CLARENA_KILL_AT"}
    env.setdefault("OMP_NUM_THREADS", "1")
    avalanche_env = {}
    if args.same_malloc:  # glibc's variables for clarena.cli.MALLOC_SETTINGS (trim, mmap)
        from clarena.cli import MALLOC_SETTINGS

        (_, trim), (_, mmap) = MALLOC_SETTINGS
        avalanche_env = {"MALLOC_TRIM_THRESHOLD_": str(trim), "MALLOC_MMAP_THRESHOLD_": str(mmap)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            runs: dict[str, list[tuple[float, float, float]]] = {"clarena": [], "avalanche": []}
            for r in range(args.repeats):
                run = Path(tmp) / f"{method}{r}"
                clarena_cmd = [
                    sys.executable, "-m", "clarena", "train", "cl_dataset=split_fmnist",
                    "cl_dataset.batch_size=128", "cl_dataset.val_fraction=0",
                    "backbone=mlp_2x400", f"cl_algorithm={CLARENA_ALGORITHM[method]}",
                    "scenario=CIL", f"seed={args.seed}", "trainer.max_epochs=1", "logger=none",
                    "trainer.enable_progress_bar=false", f"output_dir={run}",
                    *CLARENA_EXTRA.get(method, []),
                ]  # fmt: skip
                wall, cpu, _ = _timed(clarena_cmd, env)
                runs["clarena"].append((wall, cpu, _clarena_accuracy(run)))
                avalanche_cmd = [sys.executable, __file__, f"--avalanche={method}"]
                avalanche_cmd.append(f"--seed={args.seed}")
                if args.avalanche_imports_tensorflow:
                    avalanche_cmd.append("--avalanche-imports-tensorflow")
                wall, cpu, out = _timed(avalanche_cmd, {**env, **avalanche_env})
                accuracy = json.loads(out.strip().splitlines()[-1])["accuracy"]
                runs["avalanche"].append((wall, cpu, accuracy))
                print(f"{method} {r + 1}: {runs}", file=sys.stderr)
            med = {
                side: [statistics.median(v[i] for v in values) for i in range(3)]
                for side, values in runs.items()
            }
            rows.append((method, med, runs))
    print("| method | clarena wall s | Avalanche wall s | wall ratio | clarena CPU s | "
          "Avalanche CPU s | CPU ratio | clarena acc | Avalanche acc |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for method, med, _ in rows:
        c, a = med["clarena"], med["avalanche"]
        print(
            f"| {method} | {c[0]:.1f} | {a[0]:.1f} | {c[0] / a[0]:.2f} | {c[1]:.1f} | {a[1]:.1f} "
            f"| {c[1] / a[1]:.2f} | {c[2]:.4f} | {a[2]:.4f} |"
        )
    print(f"(medians of {args.repeats}; every run: {[(m, r) for m, _, r in rows]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

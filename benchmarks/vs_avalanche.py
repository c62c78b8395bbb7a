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

`--floor` adds, to the naive pair, two processes that bound from below what any clarena built
on Lightning can reach on that protocol (`floor_run`): the imports of `torch` and
`lightning.pytorch` (which imports torchmetrics), then a bare PyTorch loop of the same training
and tests, with nothing else; once as installed, once with torchmetrics' optional imports skipped
(what its upstream issue #3457 would save; a measurement only):

    OMP_NUM_THREADS=1 python benchmarks/vs_avalanche.py --methods naive --repeats 3 --floor

The `clarena` command sets glibc's malloc to keep freed memory for reuse (`clarena.cli`);
`--same-malloc` gives the Avalanche process the same settings through glibc's environment
variables. It prints a Markdown table of the medians and their ratios (clarena / Avalanche).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


def _fmnist():
    """Fashion-MNIST's splits as `{"train"|"test": (uint8 images N×28×28, int64 labels)}`."""
    import torch

    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(_idx(FMNIST / name).copy())

    return {
        split: (
            tensor(f"{prefix}-images-idx3-ubyte.gz"),
            tensor(f"{prefix}-labels-idx1-ubyte.gz").long(),
        )
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }


def _mlp():
    """The protocol's 784-400-400-10 ReLU MLP (both sides' model)."""
    from torch import nn

    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 400),
        nn.ReLU(),
        nn.Linear(400, 400),
        nn.ReLU(),
        nn.Linear(400, 10),
    )


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
    data = {split: (x.float() / 255, y) for split, (x, y) in _fmnist().items()}
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
    model = _mlp()
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


_TORCHMETRICS_OPTIONAL = ("_TORCHVISION_AVAILABLE", "_MATPLOTLIB_AVAILABLE", "_SCIPY_AVAILABLE")


@contextlib.contextmanager
def torchmetrics_without_optional_imports() -> Iterator[None]:
    """Inside, `import torchmetrics` skips torchvision, scipy.signal and matplotlib, as if
    upstream imported them lazily (Lightning-AI/torchmetrics#3457): a measurement of what that
    fix would save, never something to run a real experiment under (the metrics that need them
    would fail). Sets `torchmetrics.utilities.imports`' flags to False right after that module
    executes, and answers `package_available("scipy")` (the check of `torchmetrics/__init__`)
    with False until the block ends."""
    import importlib.abc
    import importlib.util

    import lightning_utilities.core.imports as imports

    class Flags(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
            if name != "torchmetrics.utilities.imports":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            assert spec is not None and spec.loader is not None
            execute = spec.loader.exec_module

            def exec_module(module):  # type: ignore[no-untyped-def]
                execute(module)
                for flag in (*_TORCHMETRICS_OPTIONAL, "_SCIPI_AVAILABLE"):
                    setattr(module, flag, False)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    finder = Flags()
    sys.meta_path.insert(0, finder)
    available = imports.package_available
    imports.package_available = lambda name: name != "scipy" and available(name)  # type: ignore[assignment]
    try:
        yield
    finally:
        imports.package_available = available
        if finder in sys.meta_path:  # torchmetrics was not imported inside
            sys.meta_path.remove(finder)


def floor_run(seed: int, lazy_torchmetrics: bool = False) -> None:
    """The lowest wall time any Lightning-based clarena could reach on the naive protocol (run in
    its own process by `main`): the imports such a run cannot avoid (`torch`, then
    `lightning.pytorch`, which imports torchmetrics and its optional dependencies) and a bare
    PyTorch loop of the same arithmetic: five tasks of two classes in class order, the 2×400 MLP,
    Adam (lr 1e-3, one per task, `foreach`), batches of 128, one epoch a task, and after each task
    one forward pass (no autograd) over the test images of the tasks seen so far, in batches of
    512.
    Subnormals are flushed, glibc's malloc keeps freed memory (`main` sets its variables) and the
    garbage collector is paused through the imports and its generations are frozen after them and
    at the end, as `clarena train` does; the images stay uint8 until their task needs them. No
    Hydra, no config checks, no data module, no results files, plots or checkpoints. Prints the
    final accuracy and the seconds the two imports took. With `lazy_torchmetrics`, torchmetrics
    skips its optional imports (`torchmetrics_without_optional_imports`)."""
    from clarena.core.lazy import collector_paused

    start = time.perf_counter()
    skip = torchmetrics_without_optional_imports if lazy_torchmetrics else contextlib.nullcontext
    with collector_paused():  # as `clarena train` does through its imports
        import torch

        with skip():
            import lightning.pytorch  # noqa: F401  (the import floor is the point)
    gc.freeze()  # as clarena's run does: the collector never walks the imported objects again
    from torch import nn

    imports = time.perf_counter() - start
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    data = _fmnist()  # uint8: each task's images are made floats when it starts
    counts = torch.bincount(data["train"][0].flatten(), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    mean = float((counts * values).sum() / counts.sum())
    std = float(((counts * (values - mean) ** 2).sum() / (counts.sum() - 1)).sqrt())

    def images(x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255 - mean) / std

    model = _mlp()
    correct = total = 0
    for task in range(5):
        x, y = data["train"]
        keep = (y == 2 * task) | (y == 2 * task + 1)
        x, y = images(x[keep]), y[keep]
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)  # as clarena's
        model.train()
        for batch in torch.randperm(len(y)).split(128):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        x, y = data["test"]
        seen = y < 2 * task + 2
        x, y = images(x[seen]), y[seen]
        with torch.no_grad():
            correct = sum(
                int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(512), y.split(512))
            )
        total = len(y)
    print(json.dumps({"accuracy": correct / total, "imports": imports}))
    gc.freeze()  # and, as the clarena command does, the interpreter's last collection skips all


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
    parser.add_argument("--floor-process", choices=["installed", "lazy"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--floor",
        action="store_true",
        help="with naive: also time `floor_run` (Lightning's imports and a bare loop of the same "
        "arithmetic), the lowest a Lightning-based clarena could reach, as installed and with "
        "torchmetrics' optional imports skipped",
    )
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
    if args.floor_process:
        floor_run(args.seed, args.floor_process == "lazy")
        return 0
    env = {k: v for k, v in os.environ.items() if k != "CLARENA_KILL_AT"}
    env.setdefault("OMP_NUM_THREADS", "1")
    from clarena.cli import MALLOC_SETTINGS

    (_, trim), (_, mmap) = MALLOC_SETTINGS  # as glibc's variables (trim, mmap)
    same_malloc = {"MALLOC_TRIM_THRESHOLD_": str(trim), "MALLOC_MMAP_THRESHOLD_": str(mmap)}
    avalanche_env = same_malloc if args.same_malloc else {}
    rows = []
    imports: dict[str, list[float]] = {}  # the floor processes' import seconds
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
                for floor in ("installed", "lazy") if args.floor and method == "naive" else ():
                    floor_cmd = [sys.executable, __file__, f"--floor-process={floor}"]
                    floor_cmd.append(f"--seed={args.seed}")
                    wall, cpu, out = _timed(floor_cmd, {**env, **same_malloc})
                    result = json.loads(out.strip().splitlines()[-1])
                    runs.setdefault(f"floor, {floor}", []).append((wall, cpu, result["accuracy"]))
                    imports.setdefault(floor, []).append(result["imports"])
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
    for _, med, _ in rows:
        for floor in ("installed", "lazy"):
            if f"floor, {floor}" in med:
                f, a = med[f"floor, {floor}"], med["avalanche"]
                print(
                    f"floor, torchmetrics {floor} (imports {statistics.median(imports[floor]):.2f} "
                    f"s, then a bare loop): wall {f[0]:.1f} s, CPU {f[1]:.1f} s, accuracy "
                    f"{f[2]:.4f}; floor / Avalanche: wall {f[0] / a[0]:.2f}, CPU {f[1] / a[1]:.2f}"
                )
    print(f"(medians of {args.repeats}; every run: {[(m, r) for m, _, r in rows]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

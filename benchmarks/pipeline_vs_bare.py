"""Whole-experiment overhead of `clarena train` against a bare PyTorch loop.

Both run as whole processes (start-up included) and do the same work: split Fashion-MNIST in
5 tasks of 2 classes (task-incremental, one 2-way head per task), pixels in [0, 1] without
normalisation, the 2×400 ReLU MLP, LwF (cross-entropy plus the temperature-2 distillation of the
frozen pre-task model's old heads), one Adam (lr 1e-3) over the whole sequence (the vdv2022
protocol's `keep_optimizer_state`: moments and step count carry over, a new head starts with
zero moments at the global step), batches of 128 reshuffled every epoch, a fixed number of steps
per task, and after every task a test on every task so far. Both flush subnormal floats to zero
(clarena's `flush_denormal: true`). clarena runs
`experiment=vdv2022_fmnist_lwf_til` with its results files, checkpoints and CSV logs; the bare
loop reads the IDX files itself and writes nothing.

    python benchmarks/pipeline_vs_bare.py --steps 500 --repeats 3

prints a Markdown table of the median wall times and their ratio (clarena / bare). Needs Debian's
`dataset-fashion-mnist` (or the IDX files under `--data-root`).
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def bare(steps: int, seed: int) -> None:
    """The bare PyTorch loop (run in its own process by `main`)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from clarena.core.idx import read_idx

    torch.manual_seed(seed)
    data = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = (
            torch.from_numpy(read_idx(FMNIST / f"{prefix}-images-idx3-ubyte.gz").copy()).float()
            / 255
        )
        y = torch.from_numpy(read_idx(FMNIST / f"{prefix}-labels-idx1-ubyte.gz").copy()).long()
        data[split] = (x.view(len(x), -1), y)
    backbone = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 400), nn.ReLU())
    heads = nn.ModuleList()
    old: tuple[nn.Module, nn.ModuleList] | None = None
    temperature = 2.0

    def task_data(split: str, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = data[split]
        keep = (y == 2 * t) | (y == 2 * t + 1)
        return x[keep], y[keep] - 2 * t

    optimizer = torch.optim.Adam(backbone.parameters(), lr=1e-3, foreach=True)  # as the config
    for t in range(5):
        heads.append(nn.Linear(400, 2))
        optimizer.add_param_group({"params": list(heads[t].parameters())})
        if t > 0:  # zero moments at the global step, as carry_optimizer_state gives a new head
            for p in heads[t].parameters():
                optimizer.state[p] = {
                    "step": torch.tensor(float(t * steps)),
                    "exp_avg": torch.zeros_like(p),
                    "exp_avg_sq": torch.zeros_like(p),
                }
        x, y = task_data("train", t)
        order, pos = torch.randperm(len(x)), 0
        for _ in range(steps):
            if pos >= len(x):  # a new epoch, reshuffled (the last batch of one may be short)
                order, pos = torch.randperm(len(x)), 0
            idx = order[pos : pos + 128]
            pos += 128
            features = backbone(x[idx])
            loss = F.cross_entropy(heads[t](features), y[idx])
            if old is not None:
                with torch.no_grad():
                    old_features = old[0](x[idx])
                for o in range(t):
                    with torch.no_grad():
                        q = F.softmax(old[1][o](old_features) / temperature, dim=1)
                    log_p = F.log_softmax(heads[o](features) / temperature, dim=1)
                    loss = loss - (q * log_p).sum(1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            row = []
            for j in range(t + 1):
                tx, ty = task_data("test", j)
                row.append(float((heads[j](backbone(tx)).argmax(1) == ty).float().mean()))
        print(f"after task {t + 1}: " + " ".join(f"{a:.4f}" for a in row), flush=True)
        old = (copy.deepcopy(backbone).requires_grad_(False), copy.deepcopy(heads))


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of the whole child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    """Time both as whole processes, alternating, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500, help="optimizer steps per task")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        from clarena.cli import keep_freed_memory

        keep_freed_memory()  # the `clarena` command's malloc settings: the ratio stays the loop's
        import torch

        torch.set_flush_denormal(True)  # as clarena's `flush_denormal: true`, before any work
        bare(args.steps, args.seed)
        return 0
    env = {k: v for k, v in os.environ.items() if k != "CLARENA_KILL_AT"}
    times: dict[str, list[float]] = {"clarena": [], "bare": []}
    cpu: dict[str, list[float]] = {"clarena": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            clarena_cmd = [
                sys.executable, "-m", "clarena", "train", "experiment=vdv2022_fmnist_lwf_til",
                f"trainer.max_steps={args.steps}", f"seed={args.seed}",
                "trainer.enable_progress_bar=false", f"output_dir={tmp}/run{r}",
            ]  # fmt: skip
            bare_cmd = [sys.executable, __file__, "--bare", f"--steps={args.steps}"]
            for name, cmd in (("clarena", clarena_cmd), ("bare", bare_cmd)):
                wall, used = _timed(cmd, env)
                times[name].append(wall)
                cpu[name].append(used)
            print(f"repeat {r + 1}: clarena {times['clarena'][-1]:.1f} s, bare "
                  f"{times['bare'][-1]:.1f} s", file=sys.stderr)  # fmt: skip
    c, b = statistics.median(times["clarena"]), statistics.median(times["bare"])
    cc, bc = statistics.median(cpu["clarena"]), statistics.median(cpu["bare"])
    print("| steps per task | clarena wall (s) | bare wall (s) | ratio | clarena CPU (s) | "
          "bare CPU (s) | CPU ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.steps} | {c:.1f} | {b:.1f} | {c / b:.2f} | {cc:.1f} | {bc:.1f} | {cc / bc:.2f} |"
    )
    print(f"(median of {args.repeats}; wall: {times}; CPU: {cpu})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

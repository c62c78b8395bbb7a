"""Throughput of `clarena train` on 1 and 2 DDP processes, and the cost of its collectives.

Part 1 runs one task of split Fashion-MNIST (2 classes, about 12,000 training images) with the
2×400 MLP and ER (a replay buffer fed by every rank), as whole processes, on one process with
batch 128 and on two processes with batch 64 each (the same global batch of 128). It reports
training samples per second of the task (from the run's own per-task wall time, which includes the
test after the task) and the whole-process wall time.

Part 2 measures, on two gloo processes, what clarena adds to DDP: `gather_rows` of one training
batch for the replay buffer (done every step), `gather_sharded` of one test task's predictions
(done once per test task) and a barrier.

    python benchmarks/ddp_scaling.py --steps 300 --accelerator cpu

prints Markdown tables. On the CPU the two processes share the machine's cores: the table shows
the cost of running two ranks, not a speed-up (that needs one device per rank).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_clarena(devices: int, steps: int, accelerator: str, out: Path) -> dict[str, float]:
    """One whole `clarena train` process; its wall time and the task's samples per second."""
    batch = 128 // devices
    args = [
        "cl_dataset=split_fmnist",
        "cl_dataset.num_tasks=1",
        f"cl_dataset.batch_size={batch}",
        "backbone=mlp_2x400",
        "cl_algorithm=er",
        "scenario=CIL",
        "trainer.max_epochs=-1",
        f"trainer.max_steps={steps}",
        "logger=none",
        "trainer.checkpoint_every_minutes=null",
        f"trainer.accelerator={accelerator}",
        f"output_dir={out}",
    ]
    if devices > 1:
        args += ["trainer=ddp", f"trainer.devices={devices}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // devices))}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "clarena", "train", *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    metrics = json.loads((out / "results" / "metrics.json").read_text())
    task_seconds = metrics["provenance"]["wall_time_per_task_s"][0]
    return {"wall": wall, "task": task_seconds, "samples_per_s": steps * 128 / task_seconds}


def _collectives(rank: int, init_file: str, out_dir: str, repeats: int) -> None:
    import torch
    import torch.distributed as dist

    from clarena import distributed

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        batch = torch.rand(64, 784)
        predictions = torch.randint(0, 10, (1000,))  # one test task of Fashion-MNIST, sharded
        timings = {}
        for name, call in (
            ("gather_rows, 64×784 training batch", lambda: distributed.gather_rows(batch)),
            (
                "gather_sharded, 2,000 test predictions",
                lambda: distributed.gather_sharded(predictions),
            ),
            ("barrier", distributed.barrier),
        ):
            call()
            dist.barrier()
            start = time.perf_counter()
            for _ in range(repeats):
                call()
            timings[name] = (time.perf_counter() - start) / repeats * 1e3
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(timings))
    finally:
        dist.destroy_process_group()


def main() -> None:
    """Run both parts and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    print(f"{args.steps} steps of batch 128 per run\n")
    print("| processes | batch per process | wall (s) | task (s) | train samples/s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for devices in args.devices:
            r = run_clarena(devices, args.steps, args.accelerator, Path(tmp) / f"d{devices}")
            print(
                f"| {devices} | {128 // devices} | {r['wall']:.1f} | {r['task']:.1f} | "
                f"{r['samples_per_s']:.0f} |"
            )
        import torch.multiprocessing as mp

        mp.spawn(_collectives, args=(str(Path(tmp) / "init"), tmp, args.repeats), nprocs=2)
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in (0, 1)]
    print()
    print("| collective (2 gloo processes) | ms per call, rank 0 | rank 1 |")
    print("|---|---|---|")
    for name in ranks[0]:
        print(f"| {name} | {ranks[0][name]:.3f} | {ranks[1][name]:.3f} |")


if __name__ == "__main__":
    main()

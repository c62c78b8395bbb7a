"""Peak resident memory of every shipped `vdv2022_*` experiment, each run as a whole process.

Each experiment runs as its own process, as a user runs it, with a reduced number of optimizer
steps per task (`--steps`; the protocol's 2000 only lengthen the loop, whose memory does not grow
with the steps) and everything else as shipped: all 5 tasks, the full test sets, EWC's Fisher over
each task's whole training set, the replay memories, checkpoints and logs. The peak resident set
size is the child's own `ru_maxrss` (from `os.wait4`), so nothing else on the machine counts.
Experiments whose dataset files are missing are listed as skipped.

    OMP_NUM_THREADS=1 python benchmarks/peak_memory.py --steps 25
    OMP_NUM_THREADS=1 python benchmarks/peak_memory.py --steps 200 --only vdv2022_ewc_til
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "clarena" / "configs" / "experiment"
LIMIT_MIB = 2048.0


def experiments(pattern: str) -> list[str]:
    """The shipped `vdv2022_*` experiments whose name matches `pattern`."""
    names = sorted(p.stem for p in EXPERIMENTS.glob("vdv2022_*.yaml"))
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def dataset_missing(name: str) -> str | None:
    """Why the experiment's dataset cannot be read here, or None."""
    from clarena.cl_datasets import load_source
    from clarena.run.config import compose_config

    cfg = compose_config([f"experiment={name}", "output_dir=/tmp/unused"])
    try:
        load_source(cfg.cl_dataset.source, cfg.data_root, download=False)
    except (FileNotFoundError, ValueError) as error:
        return str(error).split(":")[0]
    return None


def peak_of(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run `cmd`; return its peak RSS in MiB, its wall time in seconds and its exit status."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)
    return usage.ru_maxrss / 1024.0, time.perf_counter() - start, proc.returncode


def main(argv: list[str] | None = None) -> int:
    """Run the experiments one after another and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25, help="optimizer steps per task")
    parser.add_argument("--only", default="*", help="a glob over the experiment names")
    parser.add_argument("overrides", nargs="*", help="more overrides for every run")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "CLARENA_KILL_AT"}
    env.setdefault("OMP_NUM_THREADS", "1")
    rows, worst = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in experiments(args.only):
            missing = dataset_missing(name)
            if missing:
                rows.append(f"| {name} | – | skipped: {missing} | – | – |")
                print(rows[-1], file=sys.stderr)
                continue
            cmd = [
                sys.executable, "-m", "clarena", "train", f"experiment={name}",
                f"trainer.max_steps={args.steps}", "trainer.enable_progress_bar=false",
                f"output_dir={tmp}/{name}", *args.overrides,
            ]  # fmt: skip
            peak, wall, code = peak_of(cmd, env)
            worst = max(worst, peak)
            verdict = "yes" if peak < LIMIT_MIB else "**no**"
            status = "" if code == 0 else f" (exit {code})"
            rows.append(f"| {name} | {args.steps} | {peak:.0f}{status} | {wall:.0f} | {verdict} |")
            print(rows[-1], file=sys.stderr)
    print("| experiment | steps per task | peak RSS (MiB) | wall (s) | under 2 GiB |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nlargest peak: {worst:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

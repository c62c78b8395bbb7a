"""Where one `clarena train` process spends its wall time, phase by phase.

Runs `clarena train <overrides>` in this process (the console script's entry point, with its
malloc settings) and times, with `time.perf_counter`, the imports of torch and Lightning (done
first, as the command's first heavy step would), and every call of the functions in `PHASES`;
the rest of the process is `other` (Hydra, the config checks, building the components, the
checkpoints; the interpreter's exit is not included). One table row per phase, seconds summed
over the run's calls:

    OMP_NUM_THREADS=1 python benchmarks/run_phases.py cl_dataset=split_fmnist \\
        cl_dataset.batch_size=128 cl_dataset.val_fraction=0 backbone=mlp_2x400 cl_algorithm=ewc \\
        scenario=CIL seed=0 trainer.max_epochs=1 logger=none trainer.enable_progress_bar=false \\
        output_dir=/tmp/phases_ewc

A profile, not a benchmark: one process, no repeats (run it more than once; the machine's noise
is the table's error).
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

PHASES: dict[str, tuple[str, str, str]] = {
    "read the data files": ("clarena.cl_datasets.base", "CLDataset", "prepare_data"),
    "fits (the training loop)": ("clarena.run.loop", "Loop", "_fit"),
    "tests": ("clarena.run.loop", "Loop", "test"),
    "EWC's Fisher": ("clarena.cl_algorithms.collectors.fisher", "FisherImportance", "compute"),
    "ER's class memory": ("clarena.cl_algorithms.class_memory", "ClassMemory", "add_task"),
    "results files and plots": ("clarena.reports.writers", "", "write_results"),
    "of which plots": ("clarena.reports.writers", "", "plot_pngs"),
}
"""Phase name -> (module, class or "" for a module function, function)."""


def _timed(seconds: dict[str, float], name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start

    return wrapper


def main(argv: list[str]) -> int:
    """Run `clarena train argv` with the phases timed; print the table."""
    from clarena.core.lazy import collector_paused

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with collector_paused():  # as `clarena train` imports
        import torch  # noqa: F401

        seconds["import torch"] = time.perf_counter() - start
        import lightning.pytorch  # noqa: F401

        seconds["import Lightning (and torchmetrics)"] = time.perf_counter() - start
        seconds["import Lightning (and torchmetrics)"] -= seconds["import torch"]
        for name, (module_name, owner_name, function) in PHASES.items():
            module = importlib.import_module(module_name)
            owner = getattr(module, owner_name) if owner_name else module
            setattr(owner, function, _timed(seconds, name, getattr(owner, function)))
    from clarena import cli

    cli.keep_freed_memory()  # as the console script does
    code = cli.main(["train", *argv])
    total = time.perf_counter() - start
    measured = sum(v for k, v in seconds.items() if not k.startswith("of which"))
    print("| phase | seconds |\n|---|---|")
    for name, value in seconds.items():
        print(f"| {name} | {value:.2f} |")
    print(f"| other | {total - measured:.2f} |\n| whole process (before exit) | {total:.2f} |")
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

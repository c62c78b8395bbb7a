"""The framework's own cost per optimizer step: clarena's training step minus a bare PyTorch loop's.

Both train the same tiny model on the same data in one process, alternating, on one thread:
task 1 of split Fashion-MNIST (12,000 images of classes 0 and 1; Debian's `dataset-fashion-mnist`),
a 784-32 ReLU MLP with a 32-2 head, Adam
(lr 1e-3), batches of 128 reshuffled every epoch, `--steps` optimizer steps.

- **clarena**: the components and the loop that `clarena train` builds for a task
  (`clarena.run.components.build_components`, the loop of `clarena.run.loop` on the
  run's Fabric, from the composed config: `trainer=default` (within-task checkpoint every 10
  minutes), `callbacks=default`, the CSV logger, the progress bar unless `--no-bar`), and `fit` of
  `Finetuning` on task 1.
- **bare**: the same MLP and head in a hand-written loop over a float copy of the same images:
  `randperm` per epoch, index, forward, cross-entropy, `zero_grad`, `backward`, `step`.

The cost is measured as CPU time of this process (one torch thread, so other processes on a
shared machine disturb it little) and as wall time; the table shows medians over `--repeats`
alternating pairs and (clarena - bare) / steps in milliseconds.

    OMP_NUM_THREADS=1 python benchmarks/step_overhead.py --steps 2000 --repeats 5

`--variant` times other loops in the same run, to show where the time goes: `lightning` (a plain
Lightning Trainer with no logger, callbacks or progress bar around the same algorithm),
`lightning_min` (that plain Trainer around a minimal LightningModule holding the bare
loop's model and batches: Lightning's loop alone), `fabric` (a sketch of an inner loop on
Lightning Fabric around the same algorithm, loader and CSV logger).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

BATCH = 128


def _overrides(steps: int, out: Path, bar: bool) -> list[str]:
    return [
        "cl_dataset=split_fmnist",
        f"cl_dataset.batch_size={BATCH}",
        "cl_dataset.val_fraction=0",
        "backbone=mlp",
        "backbone.hidden_dims=[32]",
        "cl_algorithm=finetuning",
        "scenario=TIL",
        "seed=0",
        "trainer.max_epochs=-1",
        f"trainer.max_steps={steps}",
        f"trainer.enable_progress_bar={str(bar).lower()}",
        f"output_dir={out}",
    ]


def _components(steps: int, out: Path, bar: bool):
    from clarena.run.components import build_components
    from clarena.run.config import compose_config
    from clarena.run.spec import RunSpec
    from clarena.run.task_loop import build_loggers

    spec = RunSpec.of(compose_config(_overrides(steps, out, bar)))
    torch.manual_seed(0)
    components = build_components(spec)
    components.datamodule.setup_task(1)
    components.algorithm.on_task_start(1, components.datamodule)
    return spec, components, build_loggers(spec)


def run_clarena(steps: int, out: Path, bar: bool) -> Callable[[], None]:
    """Task 1 as `clarena train` runs it: a fresh `Loop` on the run's Fabric, with the
    configured callbacks, loggers, bar and within-task checkpoint."""
    from clarena.run.loop import Loop, make_fabric
    from clarena.run.task_loop import build_callbacks
    from clarena.run_folder import checkpoint as ckpt

    spec, components, loggers = _components(steps, out, bar)
    settings, callbacks = spec.settings, build_callbacks(spec)
    fabric = make_fabric(settings, callbacks)

    def fit() -> None:
        loop = Loop(
            fabric,
            1,
            settings,
            loggers=loggers,
            checkpoint_dir=ckpt.within_task_dir(out),
            callbacks=callbacks,
        )
        loop.fit(components.algorithm, datamodule=components.datamodule)

    return fit


def run_lightning(steps: int, out: Path, bar: bool) -> Callable[[], None]:
    """The same algorithm under a plain Lightning Trainer: no logger, callbacks or bar."""
    import lightning.pytorch as pl

    _, components, _ = _components(steps, out, False)

    def fit() -> None:
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=-1,
            max_steps=steps,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
        )
        trainer.fit(components.algorithm, datamodule=components.datamodule)

    return fit


def run_fabric(steps: int, out: Path, bar: bool) -> Callable[[], None]:
    """A sketch of a Lightning Fabric inner loop around the same algorithm and loader: per batch
    `training_step` (with its loss-term record and interval logging to the CSV logger),
    `fabric.backward`, `step`, `zero_grad`; no checkpoints, bar or other callbacks."""
    from types import SimpleNamespace

    from lightning.fabric import Fabric

    _, components, loggers = _components(steps, out, False)
    algorithm, datamodule = components.algorithm, components.datamodule

    def fit() -> None:
        fabric = Fabric(accelerator="cpu", devices=1)
        optimizer = algorithm.configure_optimizers()
        model, optimizer = fabric.setup(algorithm, optimizer)
        state = SimpleNamespace(
            global_step=0,
            log_every_n_steps=10,
            loggers=loggers,
            current_epoch=0,
            logged_metrics={},
            callback_metrics={},
            progress_bar_metrics={},
        )
        object.__setattr__(algorithm, "_trainer", state)  # what TrainTermsLog reads
        loader = datamodule.train_dataloader()
        try:
            while state.global_step < steps:
                loader.sampler.set_epoch(state.current_epoch)
                for batch_idx, batch in enumerate(loader):
                    loss = model.training_step(batch, batch_idx)
                    fabric.backward(loss)
                    optimizer.step()
                    optimizer.zero_grad()
                    state.global_step += 1
                    if state.global_step == steps:
                        break
                algorithm._train_terms.write(algorithm)
                state.current_epoch += 1
        finally:
            object.__setattr__(algorithm, "_trainer", None)

    return fit


def _bare_data(steps: int, out: Path) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module]:
    from torch import nn

    _, components, _ = _components(steps, out, False)
    loader = components.datamodule.train_dataloader()
    images = loader.images.index_select(0, loader.index.cpu()).float()
    x_all = (images / 255 - 0.286) / 0.353
    y_all = loader.labels.cpu()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 2))
    return x_all, y_all, model


def run_lightning_min(steps: int, out: Path, bar: bool) -> Callable[[], None]:
    """Lightning's loop alone: the bare model and batches in a minimal LightningModule."""
    import lightning.pytorch as pl
    import torch.nn.functional as F

    x_all, y_all, model = _bare_data(steps, out)

    class Minimal(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
            return F.cross_entropy(self.model(batch[0]), batch[1])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-3, foreach=True)

    class Batches:
        def __len__(self) -> int:
            return -(-len(y_all) // BATCH)

        def __iter__(self):
            order = torch.randperm(len(y_all))
            for start in range(0, len(y_all), BATCH):
                idx = order[start : start + BATCH]
                yield x_all[idx], y_all[idx]

    def fit() -> None:
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=-1,
            max_steps=steps,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
        )
        trainer.fit(Minimal(), train_dataloaders=Batches())

    return fit


def run_bare(steps: int, out: Path, bar: bool) -> Callable[[], None]:
    """A hand-written loop over the same images, same model shape and optimizer."""
    import torch.nn.functional as F

    x_all, y_all, model = _bare_data(steps, out)

    def fit() -> None:
        # a plain PyTorch process has no PYTORCH_NVML_BASED_CUDA_CHECK (`import lightning` sets
        # it, which makes Adam's every step reload NVML on a machine without a GPU)
        saved = os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
        try:
            _loop()
        finally:
            if saved is not None:
                os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = saved

    def _loop() -> None:
        # foreach, as clarena's optimizer config
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
        n, done = len(y_all), 0
        while done < steps:
            order = torch.randperm(n)
            for start in range(0, n, BATCH):
                idx = order[start : start + BATCH]
                loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                done += 1
                if done == steps:
                    break

    return fit


RUNNERS = {
    "clarena": run_clarena,
    "lightning": run_lightning,
    "lightning_min": run_lightning_min,
    "fabric": run_fabric,
    "bare": run_bare,
}


def _time(name: str, steps: int, tmp: Path, bar: bool) -> tuple[float, float]:
    out = tmp / f"{name}_{time.monotonic_ns()}"
    out.mkdir()
    fit = RUNNERS[name](steps, out, bar)
    wall, cpu = time.perf_counter(), time.process_time()
    fit()
    return time.process_time() - cpu, time.perf_counter() - wall


def main(argv: list[str] | None = None) -> int:
    """Time the variants alternately and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--variant",
        action="append",
        choices=["lightning", "lightning_min", "fabric"],
        default=[],
    )
    parser.add_argument("--no-bar", action="store_true", help="clarena without the progress bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = ["bare", "clarena", *args.variant]
    cpu: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:  # warm-up: imports, first compositions, allocator
            _time(name, 50, Path(tmp), not args.no_bar)
        for r in range(args.repeats):
            for name in names:
                c, w = _time(name, args.steps, Path(tmp), not args.no_bar)
                cpu[name].append(c)
                wall[name].append(w)
            print(
                f"repeat {r + 1}: " + ", ".join(f"{n} {cpu[n][-1]:.2f} s" for n in names),
                file=sys.stderr,
            )
    base_c, base_w = statistics.median(cpu["bare"]), statistics.median(wall["bare"])
    print(f"{args.steps} steps, batch {BATCH}, 1 thread, medians of {args.repeats}")
    print("| loop | CPU s | wall s | CPU ms/step | overhead ms/step (CPU) | overhead (wall) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(
            f"| {name} | {c:.2f} | {w:.2f} | {1000 * c / args.steps:.3f} | "
            f"{1000 * (c - base_c) / args.steps:+.3f} | {1000 * (w - base_w) / args.steps:+.3f} |"
        )
    print(f"all CPU times: {cpu}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Compose a new continual-learning algorithm from clarena's regularizers: LwF + BC new-error.

`LwFWithBC` trains on the new data with cross-entropy, distils the outputs of the model from before
the update (LwF's `DistillationReg`) and adds the new-error dissonance against that same model
(`BCNewErrorReg`), which penalises new mistakes on the samples the old model got right. The
algorithm is the class below (about thirty lines); the rest of the file runs it on the
data-incremental 8×8 digits (offline, seconds on a CPU), printing one line per task
(`--verbose` also shows Lightning's own messages and warnings):

    python docs/examples/lwf_with_bc.py
"""

from __future__ import annotations

import functools
import sys
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from lightning import seed_everything
from torch import Tensor

from clarena.backbones import MLP
from clarena.cl_algorithms import CLAlgorithm
from clarena.cl_algorithms.regularizers import BCNewErrorReg, DistillationReg
from clarena.commands.quiet import quiet_output
from clarena.heads import make_heads
from clarena.metrics import CLResults
from clarena.run.loop import Loop, make_fabric
from clarena.run.loop_settings import LoopSettings
from clarena.run.task_loop import Components, run_tasks


class LwFWithBC(CLAlgorithm):
    """$\\mathcal{L} = \\mathrm{CE}(f(x), y) + R_{\\mathrm{distill}}(f(x), h_1(x))
    + R_{\\mathrm{BC}}(f(x), h_1(x), y)$, with $h_1$ the model from before the task."""

    supported_scenarios: ClassVar[tuple[str, ...]] = ("DIL", "DataIL")  # h1 knows every class
    needs_h1: ClassVar[bool] = True  # the base class snapshots h1 at every task start

    def __init__(
        self,
        *args: Any,
        distillation_factor: float = 1.0,
        temperature: float = 2.0,
        lambda_c: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.distillation = DistillationReg(distillation_factor, temperature, "cross_entropy")
        self.dissonance = BCNewErrorReg("cross_entropy", lambda_c)

    def loss_terms(self, batch: tuple[Tensor, Tensor, Tensor]) -> dict[str, Tensor]:
        x, y, task_ids = batch
        logits = self(x, task_ids)
        terms = {"ce": F.cross_entropy(logits, y)}
        if self.h1 is not None:  # from the second task on
            old_logits = self.h1_logits(x, task_ids)  # no gradient, eval mode
            terms["distillation"] = self.distillation(logits, old_logits)
            terms["dissonance"] = self.dissonance(logits, old_logits, y)
        return terms


def _loop(task_id: int, max_steps: int) -> Loop:
    """clarena's loop (on Lightning Fabric) for one task: `max_steps` steps on the CPU, no
    checkpoints, no progress bar."""
    settings = LoopSettings(
        accelerator="cpu",
        max_steps=max_steps,
        enable_progress_bar=False,
        checkpoint_every_minutes=None,
    )
    return Loop(make_fabric(settings), task_id, settings)


def main(steps: int = 150, lambda_c: float = 1.0, seed: int = 0) -> dict[str, list[float]]:
    """Run `LwFWithBC` over the three data-incremental digits tasks; return, per task, the test
    accuracy and the negative flip rate against the previous model (the share of test samples the
    previous model got right and the new one gets wrong)."""
    from clarena.cl_datasets import DataIncrementalCLDataset

    seed_everything(seed, verbose=False)
    data = DataIncrementalCLDataset("digits", "DataIL", num_tasks=3, seed=seed, val_fraction=0.0)
    backbone = MLP(input_shape=data.input_shape, hidden_dims=(64,))
    algorithm = LwFWithBC(
        backbone,
        make_heads("DataIL", backbone.output_dim),
        functools.partial(torch.optim.Adam, lr=1e-2),
        "DataIL",
        lambda_c=lambda_c,
    )
    history: dict[str, list[float]] = {"accuracy": [], "negative_flip_rate": []}

    def record(t: int, loop: Loop) -> None:
        # every task tests on the same held-out digits, test task 1
        right = results.predictions(t, 1) == results.targets(1)
        history["accuracy"].append(right.double().mean().item())
        previous = results.predictions(t - 1, 1) == results.targets(1) if t > 1 else right
        flips = (previous & ~right).double().mean().item()
        history["negative_flip_rate"].append(flips)
        print(f"after task {t}: accuracy {history['accuracy'][-1]:.3f}, NFR {flips:.3f}")

    results = CLResults("DataIL")
    run_tasks(
        Components(data, algorithm),
        lambda t: _loop(t, steps),
        range(1, data.num_tasks + 1),
        results,
        after_task=record,
    )
    return history


if __name__ == "__main__":
    with quiet_output(verbose="--verbose" in sys.argv[1:]):
        main()

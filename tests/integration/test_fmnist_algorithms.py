"""The algorithms on real Fashion-MNIST: 5 tasks of 2 classes, the 2×400 MLP, 100 Adam steps a task.

Each run goes through the task loop of the pipeline (`run_tasks`: setup the task, `on_task_start`,
a Lightning `Trainer` per task for `fit` and `test`, `on_task_end`) and is scored by the average
accuracy over the five tasks after the last one. The orderings are asserted with wide margins,
not exact numbers.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from lightning import seed_everything

from clarena.backbones import MLP
from clarena.cl_algorithms import ALGORITHMS
from clarena.heads import make_heads
from clarena.run.loop import Loop, make_fabric
from clarena.run.loop_settings import LoopSettings
from clarena.run.task_loop import Components, run_tasks

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
STEPS_PER_TASK = 100


def _loop(task_id: int, max_steps: int) -> Loop:
    """clarena's loop for one task: `max_steps` steps on the CPU, no checkpoints."""
    settings = LoopSettings(
        accelerator="cpu",
        max_steps=max_steps,
        enable_progress_bar=False,
        checkpoint_every_minutes=None,
    )
    return Loop(make_fabric(settings), task_id, settings)


def _final_average_accuracy(name: str, scenario: str, **kwargs) -> float:
    from clarena.cl_datasets import SplitCLDataset

    seed_everything(0, verbose=False)
    datamodule = SplitCLDataset(
        source="fashion_mnist",
        scenario=scenario,
        seed=0,
        num_tasks=5,
        classes_per_task=2,
        batch_size=64,
        eval_batch_size=1000,
        val_fraction=0.0,
    )
    backbone = MLP(input_shape=datamodule.input_shape, hidden_dims=(400, 400))
    algorithm = ALGORITHMS[name](
        backbone,
        make_heads(scenario, backbone.output_dim),
        functools.partial(torch.optim.Adam, lr=1e-3),
        scenario,
        **kwargs,
    )
    results = run_tasks(
        Components(datamodule, algorithm),
        lambda t: _loop(t, STEPS_PER_TASK),
        range(1, 6),
    )
    final = results.accuracy_matrix()[-1]
    assert final.shape == (5,)
    return float(final.mean())


@pytest.fixture(autouse=True)
def _fashion_mnist_files() -> None:
    if not any(DEBIAN_FMNIST.glob("train-images-idx3-ubyte*")):
        pytest.skip("Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)")


def test_til_lwf_and_ewc_beat_finetuning_and_joint_is_highest() -> None:
    acc = {
        "finetuning": _final_average_accuracy("finetuning", "TIL"),
        "lwf": _final_average_accuracy("lwf", "TIL"),
        "ewc": _final_average_accuracy("ewc", "TIL", fisher_num_samples=500),
        "joint": _final_average_accuracy("joint", "TIL"),
    }
    print("TIL final average accuracy:", {k: round(v, 4) for k, v in acc.items()})
    assert acc["lwf"] > acc["finetuning"] + 0.05, acc
    assert acc["ewc"] > acc["finetuning"] + 0.05, acc
    assert acc["joint"] > acc["finetuning"] + 0.05, acc
    # Joint is the upper bound; in TIL on Fashion-MNIST LwF and EWC come within a point of it
    assert acc["joint"] >= max(acc.values()) - 0.005, acc


def test_cil_finetuning_remembers_one_task_and_er_far_more() -> None:
    finetuning = _final_average_accuracy("finetuning", "CIL")
    er = _final_average_accuracy("er", "CIL", buffer_size=500)
    print(f"CIL final average accuracy: finetuning {finetuning:.4f}, ER(500) {er:.4f}")
    assert 0.15 <= finetuning <= 0.25  # only the last task of five is remembered
    assert er > finetuning + 0.3

"""Every algorithm on a CUDA device through Lightning (skipped without one).

Lightning moves the model back to the CPU after each `fit`, so this checks that h1, the replay
buffer and EWC's Fisher follow the model between tasks.
"""

from __future__ import annotations

import pytest
import torch
from cl_synthetic_stream import SyntheticStream, build_algorithm
from lightning import Trainer

from clarena.cl_algorithms import ALGORITHMS
from clarena.pipelines.task_loop import Components, run_tasks

pytestmark = pytest.mark.gpu


def _trainer(max_steps: int = -1, callbacks=()) -> Trainer:
    return Trainer(
        callbacks=list(callbacks),
        max_steps=max_steps,
        accelerator="gpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_two_tasks_on_cuda(name: str) -> None:
    dil = ("strict_imitation", "elodi", "bcwi")  # DIL and DataIL only
    scenario = "DIL" if name in dil else {"hat": "TIL"}.get(name, "CIL")
    torch.manual_seed(0)
    algorithm = build_algorithm(name, scenario)
    stream = SyntheticStream(scenario)
    losses: list[torch.Tensor] = []
    results = run_tasks(
        Components(stream, algorithm),
        lambda t, callbacks: _trainer(4, callbacks),
        (1, 2),
        after_task=lambda t, trainer: losses.append(trainer.callback_metrics["train/loss"]),
    )
    assert all(torch.isfinite(loss) for loss in losses) and len(losses) == 2
    assert algorithm.fit_device is not None and algorithm.fit_device.type == "cuda"
    assert results.accuracy_matrix().shape == (2, 2)
    assert results.predictions(2, 1).device.type == "cpu"
    state = algorithm.cl_state_dict()
    assert state["task_id"] == 2

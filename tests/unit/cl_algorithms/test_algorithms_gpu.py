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

pytestmark = pytest.mark.gpu


def _trainer(max_steps: int = -1) -> Trainer:
    return Trainer(
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
    scenario = {"strict_imitation": "DIL", "hat": "TIL"}.get(name, "CIL")
    torch.manual_seed(0)
    algorithm = build_algorithm(name, scenario)
    stream = SyntheticStream(scenario)
    for t in (1, 2):
        stream.setup_task(t, cumulative=algorithm.cumulative_data)
        algorithm.on_task_start(t, stream)
        trainer = _trainer(4)
        trainer.fit(algorithm, train_dataloaders=stream.train_dataloader())
        assert torch.isfinite(trainer.callback_metrics["train/loss"])
        _trainer().test(algorithm, dataloaders=stream.test_dataloader(), verbose=False)
        algorithm.on_task_end(t, stream)
    assert algorithm.fit_device is not None and algorithm.fit_device.type == "cuda"
    assert sorted(algorithm.test_outputs) == [1, 2]
    assert all(o["preds"].device.type == "cpu" for o in algorithm.test_outputs.values())
    state = algorithm.cl_state_dict()
    assert state["task_id"] == 2

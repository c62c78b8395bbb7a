"""Every algorithm on a CUDA device through clarena's loop (skipped without one).

This checks that h1, the replay buffer and EWC's Fisher follow the model between tasks.
"""

from __future__ import annotations

import pytest
import torch
from cl_synthetic_stream import SyntheticStream, build_algorithm

from clarena.cl_algorithms import ALGORITHMS
from clarena.run.loop import Loop, make_fabric
from clarena.run.loop_settings import LoopSettings
from clarena.run.task_loop import Components, run_tasks

pytestmark = pytest.mark.gpu


def _loop(task_id: int, max_steps: int) -> Loop:
    """clarena's loop for one task: `max_steps` steps on the GPU, no checkpoints."""
    settings = LoopSettings(
        accelerator="gpu",
        max_steps=max_steps,
        enable_progress_bar=False,
        checkpoint_every_minutes=None,
    )
    return Loop(make_fabric(settings), task_id, settings)


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
        lambda t: _loop(t, 4),
        (1, 2),
        after_task=lambda t, loop: losses.append(loop.callback_metrics["train/loss"]),
    )
    assert all(torch.isfinite(loss) for loss in losses) and len(losses) == 2
    assert algorithm.fit_device is not None and algorithm.fit_device.type == "cuda"
    assert results.accuracy_matrix().shape == (2, 2)
    assert results.predictions(2, 1).device.type == "cpu"
    state = algorithm.cl_state_dict()
    assert state["task_id"] == 2

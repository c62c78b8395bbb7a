"""SI and A-GEM killed inside a task resume to the same results as an uninterrupted run.

SI's path integral grows at every optimizer step and A-GEM draws its replayed batches from its own
generator, so the results only match when that state travels with the within-task checkpoint.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from test_train_support import clarena

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _args(algorithm: str) -> tuple[str, ...]:
    """3 split-digits tasks in CIL, 2 epochs of 9 batches each, a within-task checkpoint at the
    first epoch's end."""
    return (
        f"cl_algorithm={algorithm}",
        "scenario=CIL",
        "cl_dataset.num_tasks=3",
        "trainer.max_epochs=2",
        "trainer.checkpoint_every_n_steps=9",
        "seed=3",
        "logger=none",
    )


def _accuracy_matrix(run: Path) -> list:
    return json.loads((run / "results" / "metrics.json").read_text())["accuracy_matrix"]


def _final_state(run: Path) -> dict:
    path = run / "checkpoints" / "after_task_3.pt"
    return torch.load(path, weights_only=True)["cl_state"]


def _assert_equal(a: object, b: object, where: str = "cl_state") -> None:
    """Tensors bit for bit, containers recursively."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_equal(a[key], b[key], f"{where}[{key!r}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("algorithm", ["si", "agem"])
def test_resume_inside_a_task_gives_identical_results(algorithm: str, tmp_path: Path) -> None:
    reference = clarena("train", *_args(algorithm), f"output_dir={tmp_path / 'ref'}", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]
    run = tmp_path / "run"
    # killed in the second epoch of task 2 (after the checkpoint at its first epoch's end)
    killed = clarena(
        "train",
        *_args(algorithm),
        f"output_dir={run}",
        cwd=tmp_path,
        env={"CLARENA_KILL_AT": "task:2:step:12"},
    )
    assert killed.returncode == -signal.SIGKILL
    assert (run / "checkpoints" / "within_task" / "last.ckpt").is_file()
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "continuing task 2 from" in (run / "train.log").read_text()
    assert _accuracy_matrix(run) == _accuracy_matrix(tmp_path / "ref")
    # the weights and the algorithm's state (SI's importance, A-GEM's memory) bit for bit
    _assert_equal(_final_state(run), _final_state(tmp_path / "ref"))

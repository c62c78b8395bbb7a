"""iCaRL and HAT killed inside a task resume to the results of the uninterrupted run.

iCaRL's exemplar memory (with its random generator and class means) and HAT's task embeddings
and cumulative mask live in their extra CL state; a resume inside task 2 only matches the
uninterrupted run when that state travels with both kinds of checkpoint.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from test_train_support import clarena

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CASES = {
    "icarl": ("cl_algorithm=icarl", "cl_algorithm.memory_size=100", "scenario=CIL"),
    "hat": ("cl_algorithm=hat", "scenario=TIL"),
}
COMMON = ("cl_dataset.num_tasks=3", "trainer.max_epochs=2", "seed=3", "logger=none")
EVERY_10 = "trainer.checkpoint_every_n_steps=10"  # the within-task checkpoint, mid-epoch 2


@pytest.mark.parametrize("name", sorted(CASES))
def test_resume_inside_a_task_gives_identical_results(name: str, tmp_path: Path) -> None:
    args = (*CASES[name], *COMMON)
    reference = clarena("train", *args, f"output_dir={tmp_path / 'reference'}", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]
    run = tmp_path / "run"
    env = {"CLARENA_KILL_AT": "task:2:step:12"}  # in task 2's second epoch (9 batches each)
    killed = clarena("train", *args, EVERY_10, f"output_dir={run}", cwd=tmp_path, env=env)
    assert killed.returncode == -signal.SIGKILL
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "continuing task 2 from" in (run / "train.log").read_text()
    assert _results(run) == _results(tmp_path / "reference")


def _results(run: Path) -> tuple[str, list]:
    metrics = json.loads((run / "results" / "metrics.json").read_text())
    return (run / "results" / "accuracy_matrix.csv").read_text(), metrics["accuracy_matrix"]

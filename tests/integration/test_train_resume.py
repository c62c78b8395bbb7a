"""A run killed with SIGKILL (after a task, or inside one) resumes to the same results.

The kills use the `CLARENA_KILL_AT` testing aid (`clarena.run.callbacks`): the process sends
itself SIGKILL at an exact point, so nothing gets a chance to clean up.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from test_train_support import clarena

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# ER: its replay buffer changes in every training step, so a resume inside a task only matches when
# the buffer travels with the within-task checkpoint. 3 tasks, 2 epochs of 9 batches each, a
# within-task checkpoint every 9 steps (at the first epoch's end).
ARGS = (
    "cl_algorithm=er",
    "cl_dataset.num_tasks=3",
    "trainer.max_epochs=2",
    "trainer.checkpoint_every_n_steps=9",
    "seed=3",
    "logger=none",
)


def _results(run: Path) -> tuple[str, list]:
    csv_text = (run / "results" / "accuracy_matrix.csv").read_text()
    metrics = json.loads((run / "results" / "metrics.json").read_text())
    return csv_text, metrics["accuracy_matrix"]


def _saved(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("after_task_*.pt"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list]:
    """The results of the uninterrupted run."""
    tmp = tmp_path_factory.mktemp("reference")
    proc = clarena("train", *ARGS, f"output_dir={tmp / 'run'}", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _results(tmp / "run")


def test_resume_after_sigkill_between_and_inside_tasks_gives_identical_results(
    reference: tuple[str, list], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    # 1. killed right after the checkpoint of task 2
    killed = clarena(
        "train", *ARGS, f"output_dir={run}", cwd=tmp_path, env={"CLARENA_KILL_AT": "after_task:2"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert _saved(run) == ["after_task_1.pt", "after_task_2.pt"]
    assert not (run / "results" / "accuracy_matrix.csv").read_text().startswith("3,")
    # 2. the resumed run is killed in the middle of task 3 (step 12: in its second epoch)
    killed = clarena(
        "train", f"resume={run}", cwd=tmp_path, env={"CLARENA_KILL_AT": "task:3:step:12"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert _saved(run) == ["after_task_1.pt", "after_task_2.pt"]
    assert (run / "checkpoints" / "within_task" / "last.ckpt").is_file()
    # 3. resumed again: it continues task 3 from the checkpoint at the end of its first epoch
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    log = (run / "train.log").read_text()
    assert "resuming" in log and "after task 2" in log
    assert "continuing task 3 from" in log
    assert _saved(run) == ["after_task_1.pt", "after_task_2.pt", "after_task_3.pt"]
    assert _results(run) == reference

    again = clarena("train", f"resume={run}", cwd=tmp_path)
    assert again.returncode == 0 and "already finished all 3 tasks" in again.stdout


def test_resume_after_sigkill_inside_the_first_task_gives_identical_results(
    reference: tuple[str, list], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    killed = clarena(
        "train", *ARGS, f"output_dir={run}", cwd=tmp_path, env={"CLARENA_KILL_AT": "task:1:step:12"}
    )
    assert killed.returncode == -signal.SIGKILL
    assert _saved(run) == []
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "continuing task 1 from" in (run / "train.log").read_text()
    assert _results(run) == reference

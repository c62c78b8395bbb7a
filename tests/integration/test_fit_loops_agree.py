"""The lean loop and Lightning's Trainer give the same run, bit for bit.

Each case runs one short experiment twice in this process, with `fit_loop=lean` and with
`fit_loop=lightning`, and compares the accuracy matrix, every tensor of the final task checkpoint
and the training log. The cases cover every hook the algorithms use: `on_before_optimizer_step`
(A-GEM's projection, HAT's gradient compensation), `on_train_batch_end` and
`num_training_batches` (HAT), `optimizer_step` with `after_optimizer_step` (SI's path integral),
replay (ER), h1 (LwF with one Adam across tasks), an epoch-interval LR scheduler, and
`on_test_epoch_start` (iCaRL's class means).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from test_resume_random_kills import assert_identical

pytestmark = pytest.mark.integration

SCHEDULER = (
    "+cl_algorithm.lr_scheduler._target_=torch.optim.lr_scheduler.StepLR",
    "+cl_algorithm.lr_scheduler._partial_=true",
    "+cl_algorithm.lr_scheduler.step_size=1",
    "+cl_algorithm.lr_scheduler.gamma=0.5",
)
CASES = {
    "er_cil": ("cl_algorithm=er", "scenario=CIL"),
    "agem_cil": ("cl_algorithm=agem", "scenario=CIL"),
    "hat_til": ("cl_algorithm=hat", "scenario=TIL"),
    "si_til": ("cl_algorithm=si", "scenario=TIL"),
    "lwf_cil_one_adam": (
        "cl_algorithm=lwf",
        "scenario=CIL",
        "+cl_algorithm.keep_optimizer_state=true",
    ),
    "finetuning_til_steplr": ("cl_algorithm=finetuning", "scenario=TIL", *SCHEDULER),
    "icarl_cil": ("cl_algorithm=icarl", "scenario=CIL"),
}


def _run(case: tuple[str, ...], loop: str, run: Path) -> None:
    from clarena.pipelines.config import compose_config
    from clarena.pipelines.task_loop import run_experiment

    cfg = compose_config(
        [
            "cl_dataset=split_digits",
            "cl_dataset.num_tasks=3",
            *case,
            "seed=2",
            "trainer.max_epochs=-1",
            "trainer.max_steps=20",  # 2.5 epochs: the budget ends inside an epoch
            "trainer.log_every_n_steps=3",
            "trainer.enable_progress_bar=false",
            f"fit_loop={loop}",
            f"output_dir={run}",
        ]
    )
    run.mkdir(parents=True)
    run_experiment(cfg, run)


def _log_rows(run: Path, drop: tuple[str, ...] = ()) -> list[dict[str, str]]:
    with open(run / "lightning_logs" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [{k: v for k, v in row.items() if k not in drop} for row in rows]
    return [row for row in kept if any(v for k, v in row.items() if k not in _INDEX)]


_INDEX = ("epoch", "step", "task")


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_lean_loop_and_the_trainer_give_the_same_run(name: str, tmp_path: Path) -> None:
    _run(CASES[name], "lean", tmp_path / "lean")
    _run(CASES[name], "lightning", tmp_path / "lightning")
    assert_identical(tmp_path / "lean", tmp_path / "lightning")
    # A-GEM's flag: the lean loop logs its interval mean (rows of its own), the Trainer its value
    # at the step
    drop = ("train/agem_projected",)
    lean, trainer = _log_rows(tmp_path / "lean", drop), _log_rows(tmp_path / "lightning", drop)
    assert lean == trainer
    assert any(row.get("train/loss") for row in lean)


def test_the_test_accuracy_of_every_task_is_logged_at_the_task_end_step(tmp_path: Path) -> None:
    import json

    _run(CASES["er_cil"], "lean", tmp_path / "run")
    matrix = json.loads((tmp_path / "run" / "results" / "metrics.json").read_text())
    accuracy = matrix["accuracy_matrix"]
    rows = [r for r in _log_rows(tmp_path / "run") if r.get("test/acc/task_1")]
    assert [int(r["step"]) for r in rows] == [20, 40, 60]  # the run's step after each task
    for after, row in enumerate(rows):
        for task in range(1, after + 2):
            assert float(row[f"test/acc/task_{task}"]) == pytest.approx(accuracy[after][task - 1])


def test_agem_logs_the_interval_mean_of_its_projection_flag(tmp_path: Path) -> None:
    _run(CASES["agem_cil"], "lean", tmp_path / "run")
    rows = [r for r in _log_rows(tmp_path / "run") if r.get("train/agem_projected")]
    assert rows, "A-GEM's flag is logged"
    values = [float(r["train/agem_projected"]) for r in rows]
    assert all(0.0 <= v <= 1.0 for v in values)
    # task 1 has no memory to project against: nothing is logged before task 2
    assert {int(r["task"]) for r in rows} == {2, 3}


@pytest.mark.parametrize(("loop", "expected"), [("auto", "LeanTrainer"), ("lightning", "Trainer")])
def test_clarena_train_runs_the_loop_fit_loop_names(
    loop: str, expected: str, tmp_path: Path
) -> None:
    from clarena.pipelines.config import compose_config
    from clarena.pipelines.task_loop import Progress, run_experiment

    run = tmp_path / "run"
    run.mkdir()
    cfg = compose_config(
        ["cl_dataset.num_tasks=2", "trainer.max_epochs=1", f"fit_loop={loop}", f"output_dir={run}"]
    )
    progress = Progress()
    run_experiment(cfg, run, progress=progress)
    assert type(progress.trainer).__name__ == expected
    assert progress.step == progress.trainer.global_step > 0

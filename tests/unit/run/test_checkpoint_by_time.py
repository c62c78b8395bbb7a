"""The within-task checkpoint by time, on a fake clock: written when the interval has passed,
not before, and at the steps of `checkpoint_every_n_steps`, whichever comes first."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarena.run.components import build_components
from clarena.run.config import compose_config
from clarena.run.loop import Loop, make_fabric
from clarena.run.loop_settings import CheckpointSchedule, LoopSettings
from clarena.run.spec import RunSpec
from clarena.run_folder import checkpoint as ckpt


def test_the_schedule_is_due_when_the_minutes_have_passed_or_at_the_steps() -> None:
    now = [100.0]
    schedule = CheckpointSchedule(minutes=2, steps=None, clock=lambda: now[0])
    schedule.restart()
    now[0] += 119.9
    assert not schedule.due(7)
    now[0] += 0.1
    assert schedule.due(8)
    schedule.restart()
    assert not schedule.due(9)
    by_steps = CheckpointSchedule(minutes=None, steps=5, clock=lambda: now[0])
    assert [s for s in range(1, 16) if by_steps.due(s)] == [5, 10, 15]
    assert not CheckpointSchedule(None, None).enabled


def _writes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    minutes: float | None,
    steps: int | None,
    seconds_per_step: float,
) -> list[tuple[int, int, int]]:
    """Train task 1 of split_digits for 25 steps (8 batches an epoch) with a clock that advances
    `seconds_per_step` at every optimizer step; return (step, epoch, batches done) of each write."""
    cfg = compose_config(["seed=0", "cl_dataset.num_tasks=1"])
    components = build_components(RunSpec.of(cfg))
    datamodule, algorithm = components.datamodule, components.algorithm
    datamodule.setup_task(1)
    algorithm.on_task_start(1, datamodule)
    written: list[tuple[int, int, int]] = []

    def record(state: dict, path: Path) -> None:
        written.append((state["global_step"], state["epoch"], state["batches_done"]))

    monkeypatch.setattr(ckpt, "atomic_torch_save", record)
    loop: Loop

    def clock() -> float:
        return 1000.0 + loop.global_step * seconds_per_step

    settings = LoopSettings(
        accelerator="cpu", max_epochs=-1, max_steps=25, enable_progress_bar=False
    )
    schedule = CheckpointSchedule(minutes, steps, clock)
    loop = Loop(make_fabric(settings), 1, settings, checkpoint_dir=tmp_path, schedule=schedule)
    loop.fit(algorithm, datamodule=datamodule)
    assert loop.num_training_batches == 8 and loop.global_step == 25
    return written


def test_a_checkpoint_is_written_when_the_minutes_have_passed_not_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one minute a step, every 10 minutes: after steps 10 and 20 (inside epochs 2 and 3), not
    # at the epoch ends (8, 16, 24) and not at the task's end (25)
    assert _writes(tmp_path, monkeypatch, 10, None, 60.0) == [(10, 1, 2), (20, 2, 4)]
    # 59.99 s a step: 10 steps are 599.9 s, short of 10 minutes, so the write waits for step 11
    assert _writes(tmp_path, monkeypatch, 10, None, 59.99) == [(11, 1, 3), (22, 2, 6)]


def test_steps_or_minutes_whichever_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # every 4 steps, or 10 minutes at 2 minutes a step (5 steps): the steps come first, and
    # every write restarts the time
    got = _writes(tmp_path, monkeypatch, 10, 4, 120.0)
    assert [w[0] for w in got] == [4, 8, 12, 16, 20, 24]
    # every 6 steps or 5 minutes at one minute a step: time at 5, steps at 6 (one step after the
    # time's write), time again at 11, steps at 12, ...
    got = _writes(tmp_path, monkeypatch, 5, 6, 60.0)
    assert [w[0] for w in got] == [5, 6, 11, 12, 17, 18, 23, 24]
    # a checkpoint due at an epoch's last batch is written after the epoch's end, at its boundary
    got = _writes(tmp_path, monkeypatch, None, 8, 1.0)
    assert got == [(8, 1, 0), (16, 2, 0), (24, 3, 0)]


def test_a_checkpoint_of_lightnings_trainer_makes_its_task_start_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An earlier clarena's DDP run left Lightning's checkpoint inside task 2: the task is redone
    from the checkpoint after task 1 (exact: the random states travel with it)."""
    import logging

    from clarena.run.task_loop import _within_task_checkpoint

    folder = ckpt.within_task_dir(tmp_path)
    folder.mkdir(parents=True)
    lightning_state = {"global_step": 7, "loops": {}, "callbacks": {"ResumeStateCallback": {}}}
    ckpt.atomic_torch_save(lightning_state, folder / ckpt.WITHIN_TASK_FILE)
    with caplog.at_level(logging.INFO):
        assert _within_task_checkpoint(tmp_path, 2, "") is None
    assert "was written by Lightning's Trainer" in caplog.text
    ours = {"format": ckpt.WITHIN_TASK_FORMAT, "task_id": 2, "global_step": 5}
    ckpt.atomic_torch_save(ours, folder / ckpt.WITHIN_TASK_FILE)
    assert _within_task_checkpoint(tmp_path, 2, "") == (folder / ckpt.WITHIN_TASK_FILE, 5)
    assert _within_task_checkpoint(tmp_path, 3, "") is None  # another task's

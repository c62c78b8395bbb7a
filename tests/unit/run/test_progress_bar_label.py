"""The loop's progress bar names the task and the budget (counted from 1) and redraws at most every
`refresh_seconds` and at the end of an epoch."""

from __future__ import annotations

import pytest

from clarena.run.progress_bar import ProgressBar, task_label


def test_the_bar_label_counts_from_one_and_names_a_step_budget() -> None:
    assert task_label(3, 5, 2, 3, -1) == "task 3/5 · epoch 3/3"  # the last of three epochs
    assert task_label(3, 5, 1, -1, 2000) == "task 3/5 · epoch 2 · 2000 steps"
    assert task_label(3, 5, 2, None, -1) == "task 3/5 · epoch 3"
    assert task_label(None, None, 0, 5, -1) == "epoch 1/5"


def test_the_bar_redraws_at_most_every_refresh_seconds_and_at_an_epoch_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import clarena.run.progress_bar as module

    now = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    bar = ProgressBar(1, 2, max_epochs=1, max_steps=-1, refresh_seconds=0.1)
    bar.start()
    try:
        bar.epoch_start(0, total=50)
        for done in range(1, 51):
            now[0] += 0.01  # 10 ms a step: one redraw in ten
            bar.update(done, 0.5, force=done == 50)
        assert bar.redraws == 6  # steps 1, 11, 21, 31, 41 and the epoch's last
    finally:
        bar.stop()
    with pytest.raises(ValueError, match="refresh_seconds must be >= 0"):
        ProgressBar(1, 2, 1, -1, refresh_seconds=-1)

"""The task progress bar redraws every `refresh_every` batches and at the end of an epoch."""

from __future__ import annotations

import pytest
from lightning.pytorch.callbacks import RichProgressBar

from clarena.pipelines.callbacks import TaskProgressBar


def test_the_bar_updates_every_n_batches_and_at_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(
        RichProgressBar, "on_train_batch_end", lambda self, t, m, o, b, i: seen.append(i + 1)
    )
    monkeypatch.setattr(TaskProgressBar, "total_train_batches", property(lambda self: 23))
    bar = TaskProgressBar(refresh_every=10)
    for batch_idx in range(23):
        bar.on_train_batch_end(None, None, None, None, batch_idx)
    assert seen == [10, 20, 23]
    with pytest.raises(ValueError, match="refresh_every must be >= 1"):
        TaskProgressBar(refresh_every=0)

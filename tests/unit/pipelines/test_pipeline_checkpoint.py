"""Atomic files, weights-only checkpoints and random-number states."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from clarena.pipelines import checkpoint as ckpt


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "file.txt"
    ckpt.atomic_write_text(path, "first")
    ckpt.atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "file.txt"
    ckpt.atomic_write_text(path, "old")

    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        ckpt.atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def _draw() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()  # noqa: NPY002


def test_rng_states_survive_a_weights_only_round_trip(tmp_path: Path) -> None:
    random.seed(3)
    np.random.seed(4)  # noqa: NPY002
    torch.manual_seed(5)
    state = ckpt.capture_rng()
    expected = _draw()
    torch.save(state, tmp_path / "rng.pt")
    _draw()  # move every generator on
    ckpt.restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draw() == expected


def test_task_checkpoints_load_weights_only_and_are_listed_in_order(tmp_path: Path) -> None:
    for task in (2, 10, 1):
        ckpt.save_task_checkpoint(
            tmp_path, task, 10, {"w": torch.ones(2) * task}, {"entries": []}, {"seed": 1}
        )
    assert ckpt.saved_tasks(tmp_path) == [1, 2, 10]
    state = ckpt.load_task_checkpoint(ckpt.task_checkpoint_path(tmp_path, 10))
    assert state["task_id"] == 10 and state["num_tasks"] == 10
    assert state["cl_state"]["w"].tolist() == [10.0, 10.0]
    assert state["config"] == {"seed": 1}
    raw = torch.load(ckpt.task_checkpoint_path(tmp_path, 2), weights_only=True)
    assert raw["format_version"] == ckpt.FORMAT_VERSION


def test_a_foreign_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "after_task_1.pt"
    torch.save({"format_version": 99}, path)
    with pytest.raises(ValueError, match="not a clarena task checkpoint of format 1"):
        ckpt.load_task_checkpoint(path)


def test_saved_tasks_of_a_folder_without_checkpoints_is_empty(tmp_path: Path) -> None:
    assert ckpt.saved_tasks(tmp_path) == []

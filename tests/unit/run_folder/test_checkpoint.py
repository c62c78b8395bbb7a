"""Atomic files, weights-only checkpoints and random-number states."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from clarena.run_folder import checkpoint as ckpt


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
    with pytest.raises(ckpt.CheckpointError, match="not a clarena task checkpoint of format 1"):
        ckpt.load_task_checkpoint(path)


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("ran code from a checkpoint",))


def _damaged(kind: str, path: Path) -> None:
    if kind == "truncated":
        ckpt.save_task_checkpoint(path.parent.parent, 1, 3, {"w": torch.ones(64)}, {}, {})
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random bytes":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "pickle payload":
        torch.save({"format_version": 1, "x": _Payload()}, path)
    else:  # empty
        path.write_bytes(b"")


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("truncated", "truncated or damaged"),
        ("random bytes", "not a PyTorch checkpoint"),
        ("pickle payload", "refused unopened"),
        ("empty", "it is empty"),
    ],
)
def test_a_damaged_checkpoint_gives_one_line_naming_the_file(
    kind: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ckpt.task_checkpoint_path(tmp_path, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    _damaged(kind, path)
    with pytest.raises(ckpt.CheckpointError) as caught:
        ckpt.load_task_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and says in message
    assert "delete it" in message
    assert "ran code" not in capsys.readouterr().out


def test_finished_tasks_ignore_stray_and_gapped_checkpoints(tmp_path: Path) -> None:
    for task in (1, 2, 3, 5, 10):
        ckpt.save_task_checkpoint(tmp_path, task, 5, {}, {}, {})
    assert ckpt.saved_tasks(tmp_path) == [1, 2, 3, 5, 10]
    assert ckpt.finished_tasks(tmp_path) == [1, 2, 3]
    assert ckpt.finished_tasks(tmp_path, num_tasks=2) == [1, 2]


def test_saved_tasks_of_a_folder_without_checkpoints_is_empty(tmp_path: Path) -> None:
    assert ckpt.saved_tasks(tmp_path) == []

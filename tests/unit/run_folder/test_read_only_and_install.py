"""Evaluating a run folder on read-only media, and a PyTorch install that does not import
(issue 37, items 6 and 8)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from clarena import cli
from clarena.commands import evaluate
from clarena.core.errors import ConfigError
from clarena.run_folder import folder as run_folder


def _read_only_open(real):
    def fake(path, flags, *args):
        if str(path).endswith(run_folder.LOCK_FILE):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real(path, flags, *args)

    return fake


def test_a_reader_uses_a_read_only_folder_without_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "open", _read_only_open(os.open))
    with pytest.raises(ConfigError, match="cannot create the run folder"):
        run_folder.lock_run_folder(tmp_path)  # a writer still refuses
    run_folder.lock_run_folder(tmp_path, read_only_ok=True)  # a reader goes on, unlocked
    assert tmp_path not in run_folder._held
    assert not (tmp_path / run_folder.LOCK_FILE).exists()


def test_eval_of_a_read_only_folder_asks_for_another_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.yaml").write_text("seed: 1\n")
    monkeypatch.setattr(run_folder, "writable_parent", lambda path: False)
    assert evaluate.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"clarena eval: error: cannot write the results into {tmp_path / 'eval'}: the disk or "
        "folder is read-only; pass -o <a folder you can write to>"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_writable_parent_looks_at_the_nearest_existing_folder(tmp_path: Path) -> None:
    assert run_folder.writable_parent(tmp_path / "a" / "b")
    assert not run_folder.writable_parent(Path("/proc/1/nothing/here"))


def test_mismatched_torch_and_torchvision_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(argv: list[str]) -> int:
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(cli, "_version", {"torch": "2.13.0+cpu", "torchvision": "0.29.1"}.get)
    monkeypatch.setattr(evaluate, "main", broken)
    assert cli.main(["eval", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "clarena: error: PyTorch does not import (operator torchvision::nms does not exist): "
        "torch 2.13.0+cpu with torchvision 0.29.1 are builds that do not match; install a "
        "matching pair: pip install 'torch==2.13.0' 'torchvision==0.28.*'"
    ]


def test_other_errors_are_not_taken_for_a_broken_install() -> None:
    assert cli.broken_install_message(RuntimeError("CUDA out of memory")) is None
    assert cli.broken_install_message(ImportError("no", name="wandb")) is None


def test_docs_output_that_is_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from clarena.commands import docs

    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    assert docs.main(["-o", str(existing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"clarena docs: error: --output {existing} is a file; pass a folder for the HTML (a new "
        "one, or docs/api)"
    ]
    assert existing.read_text() == "mine"

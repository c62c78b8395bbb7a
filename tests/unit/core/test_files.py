"""Atomic writes, their permissions, stale temporaries and one-line OS errors."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from clarena.core import files


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "file.txt"
    files.atomic_write_text(path, "first")
    files.atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "file.txt"
    files.atomic_write_text(path, "old")

    def fail(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        files.atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_files_honour_the_umask(umask: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        files.atomic_write_bytes(tmp_path / "a.bin", b"x")
        with open(tmp_path / "b.bin", "wb") as handle:  # what a plain open() gives
            handle.write(b"x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.bin").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "b.bin").stat().st_mode)


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    stale = tmp_path / "checkpoints" / ".after_task_2.pt.abc123.tmp"
    stale.write_bytes(b"half")
    kept = [tmp_path / "checkpoints" / "after_task_1.pt", tmp_path / "notes.tmp"]
    for path in kept:
        path.write_bytes(b"whole")
    assert files.remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and all(p.exists() for p in kept)


def test_os_errors_become_one_line_with_the_file_and_the_fix() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/runs/a/config.yaml")
    assert files.describe_os_error(full, "cannot write") == (
        "cannot write /runs/a/config.yaml: No space left on device; the disk is full: free "
        "some space or choose a folder on another disk"
    )
    exists = OSError(errno.EEXIST, "File exists", "/runs/a")
    assert files.describe_os_error(exists).endswith("choose a new name or remove the old one")
    assert "\n" not in files.describe_os_error(OSError(errno.EIO, "I/O error"))

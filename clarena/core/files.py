"""Atomic file writes and one-line descriptions of operating-system errors.

A file is written under a temporary name in its own folder (`.<name>.<random>.tmp`), flushed to
disk and renamed over the target (`os.replace`), so a process killed at any moment leaves the old
file or the new one, never half of one; a temporary file left by a killed writer is removed by
`remove_stale_temporaries`. The file gets the permissions an ordinary `open()` would give it
(0666 minus the umask), not `mkstemp`'s private 0600.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"
"""Suffix of the temporary files of an atomic write."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes under `folder`; return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.rglob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or choose a folder on another disk",
    errno.EDQUOT: "the disk quota is exceeded: free some space or choose another folder",
    errno.EROFS: "the file system is read-only: choose a folder on a writable disk",
    errno.EACCES: "permission denied: choose a folder you can write to, or fix its permissions",
    errno.EPERM: "operation not permitted: choose a folder you can write to",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "it already exists: choose a new name or remove the old one",
    errno.EISDIR: "it is a folder, not a file: pass a file path",
    errno.ENOENT: "it does not exist: check the path",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
}


def describe_os_error(exc: OSError, what: str = "") -> str:
    """One line naming the file, the cause and what to do (instead of a bare `[Errno 28] ...`).

    Args:
        exc: The error.
        what: What the file is, e.g. "the run folder".
    """
    target = str(exc.filename) if exc.filename is not None else ""
    subject = f"{what} {target}".strip() or "a file"
    reason = exc.strerror or str(exc)
    advice = _ADVICE.get(exc.errno or -1, "check the path and the disk")
    return f"{subject}: {reason}; {advice}"

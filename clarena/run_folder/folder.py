"""What a run folder guarantees, and the code that keeps the guarantees.

- **One writer.** A run holds an exclusive lock on its folder (`.clarena.lock`, `fcntl.flock`)
  for its whole life: training, resuming, re-evaluating. A second process aimed at the same
  folder stops with one line and exit code 2, before it writes anything. The lock dies with its
  process, so a killed run never leaves a stale lock behind.
- **Relocatable.** `config.yaml` names the run's own folder by the interpolation `${output_dir}`
  (not by its absolute path), and `output_dir` is set to wherever the folder is when it is read:
  a copied or moved run folder resumes and writes into itself.
- **Tamper-evident.** Every checkpoint stores the SHA-256 of `config.yaml`; a resume whose
  `config.yaml` differs from the one the checkpoints were made with is refused.
- **Data, not code.** Rebuilding a run from its folder (`resume=`, `clarena eval`) instantiates
  only classes from an allow-list (clarena's components, `torch.optim`, Lightning's loggers and
  callbacks, the Lightning Trainer); any other `_target_` is refused unless the user passes
  `--trust-config`. YAML is read with a safe loader, and checkpoints with `weights_only=True`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

from clarena.core.errors import ConfigError
from clarena.core.files import describe_os_error

CONFIG_FILE = "config.yaml"
"""The resolved config of a run, written when it starts (what `resume` and `eval` rebuild from)."""

LOCK_FILE = ".clarena.lock"
"""The lock file of a run folder (it stays in the folder; the lock itself is `flock`'s)."""

HOUSEKEEPING = frozenset({LOCK_FILE, ".hydra", "train.log"})
"""What a run writes before its `config.yaml`: a folder holding only these never started."""

_held: dict[Path, int] = {}


class RunFolderBusy(ConfigError):
    """Another process holds the run folder's lock."""


def lock_run_folder(run_dir: Path, read_only_ok: bool = False) -> None:
    """Take the exclusive lock of `run_dir` for the rest of this process (idempotent).

    Args:
        run_dir: The run folder (created if missing).
        read_only_ok: For readers (`clarena eval`): an existing folder on a read-only disk, or one
            this user cannot write, is used without the lock (no one can write into it anyway).

    Raises:
        RunFolderBusy: Another process is running in the folder.
        ConfigError: The folder cannot be created (read-only disk, a file in the way, ...).
    """
    run_dir = Path(run_dir).absolute()
    if run_dir in _held:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        unwritable = exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
        if read_only_ok and unwritable and run_dir.is_dir():
            return
        raise ConfigError(describe_os_error(exc, "cannot create the run folder:")) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = lock_holder(run_dir)
        who = f"process {holder}" if holder else "another clarena process"
        raise RunFolderBusy(
            f"{run_dir} is in use by {who} (clarena train, resume or eval); wait for it to "
            "end, or choose another output_dir"
        ) from None
    _held[run_dir] = fd  # the file stays empty: `clarena eval` must leave a run folder unchanged


def lock_holder(run_dir: Path) -> int | None:
    """The process id holding the lock of `run_dir` (from Linux's `/proc/locks`), or None when
    no process holds it or it cannot be told."""
    try:
        inode = os.stat(Path(run_dir) / LOCK_FILE).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
            try:
                return int(fields[4])
            except ValueError:
                return None
    return None


def writable_parent(path: Path) -> bool:
    """Whether `path`, or the nearest folder above it that exists, can be written to."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def unlock_run_folder(run_dir: Path) -> None:
    """Release the lock `lock_run_folder` took (nothing happens if this process holds none)."""
    fd = _held.pop(Path(run_dir).absolute(), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def never_started(run_dir: Path) -> bool:
    """Whether `run_dir` holds only what a run writes before its config (killed while starting)."""
    return run_dir.is_dir() and all(p.name in HOUSEKEEPING for p in run_dir.iterdir())


def config_digest(run_dir: Path) -> str:
    """SHA-256 of the run's `config.yaml` bytes."""
    return hashlib.sha256((run_dir / CONFIG_FILE).read_bytes()).hexdigest()


def _relative(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        return {k: _relative(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, root) for v in value]
    if isinstance(value, str) and (value == root or value.startswith(root + os.sep)):
        return "${output_dir}" + value[len(root) :]
    return value


def relocatable(plain: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """`plain` (resolved) with every path inside `run_dir` written as `${output_dir}/...`."""
    root = str(Path(run_dir).absolute())
    out = {k: (v if k == "output_dir" else _relative(v, root)) for k, v in plain.items()}
    out["output_dir"] = root
    return out

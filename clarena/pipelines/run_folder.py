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

import fcntl
import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

from clarena.core.files import describe_os_error
from clarena.pipelines.errors import ConfigError

CONFIG_FILE = "config.yaml"
"""The resolved config of a run, written when it starts (what `resume` and `eval` rebuild from)."""

LOCK_FILE = ".clarena.lock"
"""The lock file of a run folder (it stays in the folder; the lock itself is `flock`'s)."""

HOUSEKEEPING = frozenset({LOCK_FILE, ".hydra", "train.log"})
"""What a run writes before its `config.yaml`: a folder holding only these never started."""

ALLOWED_TARGETS = (
    "clarena.",
    "torch.optim.",
    "lightning.pytorch.loggers.",
    "lightning.pytorch.callbacks.",
    "lightning.pytorch.Trainer",
    "lightning.pytorch.trainer.trainer.Trainer",
)
"""Prefixes of the `_target_`s a run folder may name without `--trust-config` (classes only)."""

_held: dict[Path, int] = {}


class RunFolderBusy(ConfigError):
    """Another process holds the run folder's lock."""


def lock_run_folder(run_dir: Path) -> None:
    """Take the exclusive lock of `run_dir` for the rest of this process (idempotent).

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
        raise ConfigError(describe_os_error(exc, "cannot create the run folder:")) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunFolderBusy(
            f"{run_dir} is in use by another clarena process (train, resume or eval); wait for "
            "it to end, or choose another output_dir"
        ) from None
    _held[run_dir] = fd  # the file stays empty: `clarena eval` must leave a run folder unchanged


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


def _targets(node: Any, where: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None:
            found.append((where or "<root>", str(target)))
        for key, value in node.items():
            found += _targets(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _targets(value, f"{where}[{i}]")
    return found


def check_targets(config: dict[str, Any], source: Path) -> None:
    """Refuse any `_target_` of `config` outside `ALLOWED_TARGETS` or that is not a class.

    Raises:
        ConfigError: One line naming the key, the target and `--trust-config`.
    """
    from clarena.pipelines.config import import_target

    for where, target in _targets(config):
        allowed = target.startswith(ALLOWED_TARGETS)
        if allowed:
            try:
                allowed = inspect.isclass(import_target(target, where))
            except ConfigError:
                allowed = False
        if not allowed:
            raise ConfigError(
                f"{source} sets {where}._target_ to {target!r}, which is not one of clarena's "
                "components, a torch.optim class or a Lightning logger/callback; a run folder is "
                "data and must not run code: pass --trust-config only if you wrote this config"
            )


def load_run_config(run_dir: Path, trust: bool = False) -> Any:
    """Read `run_dir/config.yaml` as a DictConfig rooted at `run_dir`, checked for safety.

    Raises:
        ConfigError: The file is missing, not YAML, not a mapping, or names a forbidden target.
    """
    import yaml
    from omegaconf import OmegaConf

    path = Path(run_dir) / CONFIG_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(describe_os_error(exc, "cannot read")) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{path} is not valid YAML ({first}); restore it from a copy, or start a new run"
        ) from None
    if not isinstance(data, dict) or not data:
        kind = "empty" if not data else f"a {type(data).__name__}, not a mapping"
        raise ConfigError(
            f"{path} is {kind}, so it is not a clarena run config; restore it, or start a new run"
        )
    if not trust:
        check_targets(data, path)
    data["output_dir"] = str(Path(run_dir).absolute())
    return OmegaConf.create(data)

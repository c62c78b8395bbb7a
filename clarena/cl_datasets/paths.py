"""Where dataset files live: the default data folder and the checks on a user's `data_root`."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CLARENA_DATA_ROOT"
"""Environment variable that overrides the default data folder."""


def default_data_root() -> Path:
    """The folder dataset files are read from and downloaded to when no `data_root` is given.

    In order of precedence: `$CLARENA_DATA_ROOT`; `$XDG_DATA_HOME/clarena/data`;
    `~/.local/share/clarena/data`. The folder is not created here.

    Returns:
        The absolute path of the default data folder.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser().absolute()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return (base / "clarena" / "data").absolute()


def resolve_data_root(data_root: str | os.PathLike[str] | None) -> Path:
    """Turn a user's `data_root` setting into a folder that exists.

    `None` (or the default folder itself) means `default_data_root()`, which is created on demand.
    Any other folder must already exist: a typo there should stop the run, not scatter downloads.

    Args:
        data_root: the configured folder, or `None` for the default.

    Returns:
        The absolute path of the data folder.

    Raises:
        ValueError: if an explicitly given folder does not exist or is not a folder.
    """
    default = default_data_root()
    if data_root is None or str(data_root) == "":
        default.mkdir(parents=True, exist_ok=True)
        return default
    root = Path(data_root).expanduser().absolute()
    if root == default:
        root.mkdir(parents=True, exist_ok=True)
        return root
    if not root.exists():
        raise ValueError(
            f"data_root {str(root)!r} does not exist: create it, fix the path, or set "
            f"data_root=null to use the default {str(default)!r}"
        )
    if not root.is_dir():
        raise ValueError(f"data_root {str(root)!r} is a file, not a folder: point it at a folder")
    return root

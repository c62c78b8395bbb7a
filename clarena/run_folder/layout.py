"""Where a run folder may be: never inside another run's folder.

A run writes its lock, `config.yaml`, `checkpoints/` and `results/` into its folder. A new run
whose `output_dir` lies inside another run (`<run>/checkpoints/new`, `<run>/results/x`) would mix
its files into that run's: a resume or `clarena eval` of the outer run would meet them, a study
would count the inner run as a run of the outer's folder, and deleting one run would delete the
other. `inside_another_run` finds the run folder that encloses a path; `clarena train` refuses such
an `output_dir` (`check_not_inside_another_run`) before it creates anything.

A folder is a run folder when it holds the lock file of a run (`.clarena.lock`), or the run's
`config.yaml` next to its `checkpoints/` or `results/` folder (a run copied without its lock).
"""

from __future__ import annotations

import os
from pathlib import Path

from clarena.core.errors import ConfigError
from clarena.run_folder.folder import CONFIG_FILE, LOCK_FILE

RUN_SUBFOLDERS = ("checkpoints", "results")
"""The folders of a run (`clarena.run_folder.checkpoint.CHECKPOINT_DIR` and the results) that,
next to its `config.yaml`, mark a run folder without its lock file."""


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` is a run's folder (see the module docstring)."""
    if (folder / LOCK_FILE).is_file():
        return True
    return (folder / CONFIG_FILE).is_file() and any(
        (folder / sub).is_dir() for sub in RUN_SUBFOLDERS
    )


def inside_another_run(path: str | os.PathLike[str]) -> Path | None:
    """The nearest run folder strictly above `path` (symbolic links resolved, `path` need not
    exist), or None when no folder above it is a run's. `path` itself being a run folder (a
    resume) is not "inside another run"."""
    target = Path(path).expanduser().resolve()
    for folder in target.parents:
        try:
            if is_run_folder(folder):
                return folder
        except OSError:  # a folder we may not read: not a run of ours
            continue
    return None


def check_not_inside_another_run(path: str | os.PathLike[str]) -> None:
    """Refuse an `output_dir` inside another run's folder in one line.

    Raises:
        ConfigError: naming the enclosing run and a folder beside it to use instead.
    """
    outer = inside_another_run(path)
    if outer is not None:
        raise ConfigError(
            f"output_dir {path} is inside the run folder {outer}, whose files it would mix with "
            f"its own; choose a folder outside it, e.g. output_dir={outer.parent / 'new_run'}"
        )

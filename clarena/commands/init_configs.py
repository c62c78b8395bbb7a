"""`clarena init [DIR]`: write a starter folder for your own configs (default `./clarena_configs`).

The folder goes on Hydra's search path with `clarena train --config-dir DIR ...`. It holds a config
of its own for a group (`cl_algorithm/er_big_buffer.yaml`) and a complete experiment that uses it
(`experiment/my_er_cil.yaml`); add files next to them in the same group folders (`cl_dataset/`,
`backbone/`, `cl_algorithm/`, `optimizer/`, `trainer/`, `logger/`, `callbacks/`, `experiment/`).
The repository's `example_configs/` is exactly what this command writes. A folder that already
holds anything is refused (`--force` writes the starter files next to what is there); an existing
file is never overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

README = """\
# My clarena configs

This folder extends the configs shipped with clarena (`clarena list` shows them). Put it on the
search path with `--config-dir`:

    clarena train --config-dir {name} experiment=my_er_cil
    clarena train --config-dir {name} cl_algorithm=er_big_buffer scenario=CIL

Files go into the group folders of the shipped configs (`cl_dataset/`, `backbone/`,
`cl_algorithm/`, `optimizer/`, `trainer/`, `logger/`, `callbacks/`, `experiment/`); a file here
adds an option to its group. Experiments start with `# @package _global_` and override only what
differs from the defaults. To see the composed result without running it:

    clarena train --config-dir {name} --cfg job experiment=my_er_cil
"""

ALGORITHM = """\
# Experience Replay with a larger, class-balanced buffer: an option of our own in the
# cl_algorithm group (use it as cl_algorithm=er_big_buffer).
defaults:
  - er            # start from the shipped cl_algorithm/er.yaml

buffer_size: 500
class_balanced: true
"""

EXPERIMENT = """\
# @package _global_
# Our own experiment: class-incremental split digits with the bigger replay buffer.
#   clarena train --config-dir <this folder> experiment=my_er_cil
defaults:
  - override /cl_algorithm: er_big_buffer

experiment_name: my_er_cil
scenario: CIL
seed: 7

trainer:
  max_epochs: 5
"""

#: The files of a starter folder, by path relative to it.
FILES: dict[str, str] = {
    "README.md": README,
    "cl_algorithm/er_big_buffer.yaml": ALGORITHM,
    "experiment/my_er_cil.yaml": EXPERIMENT,
}


def write_starter(folder: Path, force: bool = False) -> list[Path]:
    """Write the starter files into `folder`, which must be new or empty unless `force`; refuse
    to overwrite any existing file.

    Returns:
        The paths written.

    Raises:
        FileExistsError: If `folder` holds anything (without `force`), is a file, or one of the
            files already exists (nothing is written then).
    """
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(
            f"{folder} is a file; choose a new folder (clarena init other_folder)"
        )
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if entries and not force:
        shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
        raise FileExistsError(
            f"{folder} is not empty ({len(entries)} entr{'y' if len(entries) == 1 else 'ies'}: "
            f"{shown}); choose a new folder "
            "(clarena init other_folder), or add --force to write the starter files next to "
            "them (no existing file is overwritten)"
        )
    targets = {folder / rel: text for rel, text in FILES.items()}
    existing = [str(p) for p in targets if p.exists()]
    if existing:
        raise FileExistsError(
            f"{existing[0]} already exists; choose a new folder (clarena init other_folder)"
        )
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(name=folder.name) if path.suffix == ".md" else text)
    return list(targets)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `clarena init`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="clarena init", description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="clarena_configs", type=Path)
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that already holds files (existing files are kept)",
    )
    args = parser.parse_args(argv)
    try:
        written = write_starter(args.folder, force=args.force)
    except FileExistsError as exc:
        print(f"clarena init: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only disk, a file in the way, no permission, disk full
        from clarena.core.files import describe_os_error

        print(f"clarena init: error: {describe_os_error(exc, 'cannot write')}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    print(f"next: clarena train --config-dir {args.folder} experiment=my_er_cil")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

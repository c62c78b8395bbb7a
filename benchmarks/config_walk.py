"""The walk of the config through one `clarena train`: which files it passes, in which order.

Follows the config as a reader following the code would: every call, inside clarena's package,
that receives the run's config (an OmegaConf `DictConfig` or the run description
`clarena.run.spec.RunSpec`) as an argument. A *stop* is such a call in another file than the last
stop's; a *return* is a stop in a file the walk had already left. It prints the stops in order,
the entries per file, and the totals.

    OMP_NUM_THREADS=1 python benchmarks/config_walk.py            # this checkout
    OMP_NUM_THREADS=1 python benchmarks/config_walk.py --package-root <other checkout>

A short default run (`trainer.max_steps=2`, two tasks, no logger) in a temporary folder; only
the first process is traced (one process: no DDP).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path


def walk(package_dir: Path) -> list[tuple[str, str]]:
    """(file relative to the package, function) of every config-carrying call, in call order."""
    from omegaconf import DictConfig

    kinds: tuple[type, ...] = (DictConfig,)
    try:
        from clarena.run.spec import RunSpec

        kinds = (DictConfig, RunSpec)
    except ImportError:  # a checkout from before the run description
        pass
    root = str(package_dir) + "/"
    calls: list[tuple[str, str]] = []

    def profile(frame, event, _arg):  # type: ignore[no-untyped-def]
        if event != "call" or not frame.f_code.co_filename.startswith(root):
            return
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if any(isinstance(frame.f_locals.get(name), kinds) for name in names):
            calls.append((code.co_filename[len(root) :], code.co_name))

    from clarena import cli

    with tempfile.TemporaryDirectory() as tmp:
        args = ["train", "trainer.max_steps=2", "cl_dataset.num_tasks=2", "logger=none"]
        args += [f"output_dir={Path(tmp) / 'run'}", "trainer.enable_progress_bar=false"]
        sys.setprofile(profile)
        try:
            code = cli.main(args)
        finally:
            sys.setprofile(None)
    if code != 0:
        raise SystemExit(f"clarena train failed with exit code {code}")
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package-root", type=Path, help="a checkout to import clarena from")
    args = parser.parse_args()
    if args.package_root is not None:
        sys.path.insert(0, str(args.package_root.resolve()))
    import clarena

    calls = walk(Path(clarena.__file__).parent)
    stops: list[tuple[str, str]] = []
    for file, function in calls:
        if not stops or stops[-1][0] != file:
            stops.append((file, function))
    seen: set[str] = set()
    returns = 0
    for i, (file, function) in enumerate(stops):
        if file in seen:
            returns += 1
        seen.add(file)
        print(f"{i + 1:3d}. {file}: {function}")
    entries = collections.Counter(file for file, _ in stops)
    print("\nentries per file:", ", ".join(f"{f} {n}" for f, n in entries.most_common()))
    names = collections.Counter(function for _, function in calls)
    nodes = {k: names[k] for k in ("callback_nodes", "logger_nodes") if names[k]}
    print(
        f"{len(stops)} stops in {len(seen)} files, {returns} returns; {len(calls)} calls; {nodes}"
    )


if __name__ == "__main__":
    main()

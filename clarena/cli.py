"""The `clarena` command: a thin dispatcher to the sub-commands.

Each sub-command lives in its own module and exposes `main(argv: list[str]) -> int`; this file only
maps names to modules, so `clarena --help` stays fast (nothing heavy is imported until a sub-command
runs).

    clarena train [overrides]   run an experiment (a Hydra application)
    clarena eval RUN_DIR        re-evaluate the saved models of a run
    clarena report PATH         render a finished run or sweep as a static HTML page
    clarena docs [-o DIR]       regenerate the pdoc API documentation
    clarena init [DIR]          write a starter config directory for your own experiments
    clarena list                list the available datasets, algorithms and experiments
    clarena data [fetch SOURCE] list the dataset sources and their files; download one
    clarena compare OLD NEW     the release gate of a model update (exit 1 when a gate fails)
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import importlib.util
import os
import sys

#: Sub-command name -> (module implementing it, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("clarena.commands.train", "run an experiment from Hydra configs"),
    "eval": ("clarena.commands.evaluate", "re-evaluate the saved models of a run"),
    "report": ("clarena.commands.report", "render a run or a sweep as static HTML"),
    "docs": ("clarena.commands.docs", "regenerate the pdoc API documentation"),
    "init": ("clarena.commands.init_configs", "write a starter config directory"),
    "list": ("clarena.commands.listing", "list datasets, algorithms and experiments"),
    "data": ("clarena.commands.data", "list the dataset sources and their files; fetch one"),
    "compare": ("clarena.commands.compare", "the release gate: an update against the old model"),
}


#: Commands whose process keeps the interpreter's final garbage collection: `docs` imports
#: Avalanche's JAX, whose nanobind extensions print every object still alive at exit as "leaked"
#: (180 lines on stderr when the collection is skipped).
COLLECTED_AT_EXIT = frozenset({"docs"})


#: glibc `mallopt` settings of the console script: `M_TRIM_THRESHOLD` (-1) 1 GiB and
#: `M_MMAP_THRESHOLD` (-3) 256 MiB. By default glibc serves blocks over 128 KiB-32 MiB with fresh
#: `mmap`s and gives freed heap tops back to the kernel, so every training step's activations,
#: gradients and optimizer temporaries are page-faulted in anew: on the 2-core VM of
#: `benchmarks/README.md` a split-Fashion-MNIST run took 275k minor faults (174k with these).
MALLOC_SETTINGS = ((-1, 1 << 30), (-3, 1 << 28))


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse (`MALLOC_SETTINGS`); True when it applied.

    Only the console script calls it (the process is then clarena's), and not when the user set
    any of glibc's `MALLOC_*` variables or `GLIBC_TUNABLES`. Without glibc (macOS, musl) it does
    nothing."""
    tuned = any(k.startswith("MALLOC_") or k == "GLIBC_TUNABLES" for k in os.environ)
    if tuned or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(option, value) == 1 for option, value in MALLOC_SETTINGS)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _available() -> dict[str, tuple[str, str]]:
    """The sub-commands whose module is installed."""
    return {name: entry for name, entry in COMMANDS.items() if _installed(entry[0])}


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def broken_install_message(exc: BaseException) -> str | None:
    """One line for a torch or torchvision that fails to import (two builds that do not match,
    e.g. "operator torchvision::nms does not exist"), naming both versions and the fix; None for
    any other error."""
    text = str(exc)
    missing = isinstance(exc, ImportError) and exc.name in {"torch", "torchvision"}
    if "torchvision::" not in text and not missing:
        return None
    torch_v, vision_v = _version("torch"), _version("torchvision")
    first = text.splitlines()[0] if text else type(exc).__name__
    pair = "torch torchvision"
    major, _, rest = torch_v.partition(".")
    minor = rest.split(".")[0]
    if major == "2" and minor.isdigit():  # torchvision 0.(m+15) is built for torch 2.m
        pair = f"'torch=={torch_v.split('+')[0]}' 'torchvision==0.{int(minor) + 15}.*'"
    return (
        f"PyTorch does not import ({first}): torch {torch_v} with torchvision {vision_v} are "
        f"builds that do not match; install a matching pair: pip install {pair}"
    )


def _usage() -> str:
    lines = ["usage: clarena <command> [args]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in _available().items()]
    lines += ["", "Run `clarena <command> --help` for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `clarena` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:
        keep_freed_memory()
    from clarena.run.ddp import is_child

    if is_child():  # a DDP child started by rank zero's Fabric: join that run
        from clarena.core.lazy import collector_paused

        with collector_paused():  # the run's heavy imports (torch, Lightning): it says why
            from clarena.run.task_loop import worker_main
        return worker_main()
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if args[0] in {"-V", "--version"}:
        from clarena import __version__

        print(f"clarena {__version__}")
        return 0
    name, rest = args[0], args[1:]
    available = _available()
    if name not in available:
        known = ", ".join(available)
        print(f"clarena: unknown command {name!r}; choose one of: {known}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(available[name][0])
        return int(module.main(rest) or 0)
    except BrokenPipeError:  # output piped into a reader that closed early, e.g. `| head`
        sys.stderr.close()
        return 0
    except (ImportError, RuntimeError) as exc:
        message = broken_install_message(exc)
        if message is None:
            raise
        print(f"clarena: error: {message}", file=sys.stderr)
        return 2
    finally:
        if argv is None and name not in COLLECTED_AT_EXIT:
            # the console script: the process ends here, so spare the interpreter's final
            # collection the walk over every imported object (~1 s with torch)
            gc.freeze()


if __name__ == "__main__":
    raise SystemExit(main())

"""Quiet output for clarena's commands: only what the user asked for reaches the terminal.

By default `clarena eval`, `clarena docs` and the examples print none of the libraries' chatter:
Lightning's banners (`GPU available: …`, `TPU available: …`, the logger advert, `Trainer.fit
stopped: …`), deprecation and future warnings, and the start-up lines TensorFlow and absl write
straight to the process's stderr. Their `--verbose` flag skips all of this and shows everything.

    with quiet_output(verbose=args.verbose):
        ...  # build Trainers, fit, test
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Iterable, Iterator

LIGHTNING_INFO_LOGGERS: tuple[str, ...] = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
    "lightning.fabric.utilities.seed",
    "lightning.pytorch.utilities.seed",
)
"""The loggers of Lightning's informational messages; raised to WARNING while quiet."""

QUIET_WARNINGS: tuple[type[Warning], ...] = (
    DeprecationWarning,
    PendingDeprecationWarning,
    FutureWarning,
)
"""Warning categories hidden while quiet (Lightning's deprecations derive from the first)."""


@contextlib.contextmanager
def quiet_output(verbose: bool = False) -> Iterator[None]:
    """Hide Lightning's banners and deprecation warnings inside the block, unless `verbose`."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in LIGHTNING_INFO_LOGGERS]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for category in QUIET_WARNINGS:
                warnings.filterwarnings("ignore", category=category)
            yield
    finally:
        for logger, level in zip(loggers, saved):
            logger.setLevel(level)


@contextlib.contextmanager
def silenced_stderr(verbose: bool = False) -> Iterator[None]:
    """Send file descriptor 2 to the null device inside the block, unless `verbose`.

    For native libraries (TensorFlow's C++ runtime, absl) that write to the process's stderr
    directly, past `sys.stderr`. Python's own `sys.stderr` is flushed before and after.
    """
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_quietly(modules: Iterable[str], verbose: bool = False) -> None:
    """Import the installed ones of `modules` with their start-up chatter hidden (unless `verbose`).

    TensorFlow is told to keep its C++ log below errors (`TF_CPP_MIN_LOG_LEVEL`, unless already
    set). Import errors are left for the caller's own import to raise.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with silenced_stderr(verbose), quiet_output(verbose):
        for module in modules:
            if module in sys.modules:
                continue
            try:
                if importlib.util.find_spec(module) is None:
                    continue
                importlib.import_module(module)
            except Exception:  # a broken optional install: its real import reports it later
                continue

"""The errors whose message is already a complete one-line explanation with the fix.

They live on the ground floor because every layer raises them: a training step stops on a
non-finite loss (`clarena.cl_algorithms.train_terms`), a config is refused before a run starts
(`ConfigError`), and the commands print them as they are (`one_line`).

Every failure of `clarena train` / `clarena eval` ends in one line on stderr that names the cause
and the fix, and a non-zero exit: 2 for a bad command line or config (nothing was run or written),
1 for a run that failed (its folder holds the log with the full traceback). `--verbose` prints
the traceback too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_RUN_FAILED = 1
"""Exit code of a run that started and failed (missing dataset, NaN loss, ...)."""

EXIT_BAD_INPUT = 2
"""Exit code of a command line or config that was refused before anything ran."""


class ClarenaError(Exception):
    """An error whose message is already a complete one-line explanation with the fix."""


class NonFiniteLossError(ClarenaError, FloatingPointError):
    """The training loss became NaN or infinite."""


class ConfigError(ClarenaError, ValueError):
    """A config or command line that cannot run (unknown key, wrong type, unsupported scenario)."""


def closest(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest of `choices` to `word`, or an empty string."""
    by_lower = {choice.lower(): choice for choice in choices}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.5)
    return f" (did you mean {by_lower[match[0]]!r}?)" if match else ""


def one_line(exc: BaseException) -> str:
    """The message of `exc` (or of the exception it wraps) as one line naming the cause.

    Hydra's instantiation errors wrap the real exception (`Error in call to target ...`); the
    wrapped one carries the useful message, so it is preferred. Messages of other exception types
    are prefixed with the type's name, since a bare `KeyError: 'x'` says little.
    """
    from hydra.errors import InstantiationException

    while isinstance(exc, InstantiationException) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, OSError) and exc.errno is not None:
        from clarena.core.files import describe_os_error

        return describe_os_error(exc)
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    if isinstance(exc, ClarenaError):
        return text
    if not text:
        text = "(no message)"
    return f"{type(exc).__name__}: {text}"

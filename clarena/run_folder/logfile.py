"""The `train.log` file handler: one clear line, once, when the log cannot be written.

Python's `logging.FileHandler` reports every failed write with a multi-line "--- Logging error ---"
block (a full disk at the start of a run printed dozens of them, then pointed at an empty log).
`RunLogHandler` prints one line naming the file, the cause and the fix the first time a write
fails, and then stops trying; the run goes on, and its own file writes fail with their own
one-line errors if the disk stays full.
"""

from __future__ import annotations

import logging
import sys

from clarena.core.files import describe_os_error


class RunLogHandler(logging.FileHandler):
    """A `FileHandler` that reports a failed write once, in one line, then goes quiet.

    Args:
        filename: The log file.
        mode: As `logging.FileHandler`.
        encoding: As `logging.FileHandler`.
        delay: As `logging.FileHandler`.
    """

    def __init__(
        self, filename: str, mode: str = "a", encoding: str | None = "utf-8", delay: bool = False
    ) -> None:
        self.broken = False
        try:
            super().__init__(filename, mode=mode, encoding=encoding, delay=delay)
        except OSError as exc:  # cannot even open it: log nowhere, say so once
            super().__init__(filename, mode=mode, encoding=encoding, delay=True)
            self._report(exc)

    def _report(self, exc: BaseException) -> None:
        if self.broken:
            return
        self.broken = True
        if isinstance(exc, OSError):
            reason = describe_os_error(exc, "cannot write the log")
        else:
            reason = f"cannot write the log {self.baseFilename}: {exc}"
        print(f"clarena: {reason} (the run goes on without its log file)", file=sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        """Write `record`, unless an earlier write failed."""
        if not self.broken:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Report the failure once in one line instead of logging's traceback block."""
        self._report(sys.exc_info()[1] or OSError("unknown error"))

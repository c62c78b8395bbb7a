"""The errors whose message is already a complete one-line explanation with the fix.

They live on the ground floor because every layer raises them: a training step stops on a
non-finite loss (`clarena.cl_algorithms.train_terms`), the commands print them as they are
(`clarena.pipelines.errors` adds the command-line ones).
"""

from __future__ import annotations


class ClarenaError(Exception):
    """An error whose message is already a complete one-line explanation with the fix."""


class NonFiniteLossError(ClarenaError, FloatingPointError):
    """The training loss became NaN or infinite."""

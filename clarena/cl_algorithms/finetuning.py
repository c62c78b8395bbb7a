"""Finetuning: train on each task in turn with nothing against forgetting (the lower bound)."""

from __future__ import annotations

from typing import Any

from clarena.cl_algorithms.composed import Composed
from clarena.cl_algorithms.terms import CrossEntropy


class Finetuning(Composed):
    """Plain cross-entropy on the current task's data: $\\mathcal{L} = \\mathrm{CE}(f(x), y)$.

    A composition of the one term `ce` (`terms.CrossEntropy`). Supports every scenario. Loss
    terms: `ce`.

    Args:
        *args: `backbone, heads, optimizer, scenario` as `CLAlgorithm`.
        **kwargs: as `CLAlgorithm`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, terms={"ce": CrossEntropy()}, **kwargs)

"""Argument validation and the one reduction rule shared by every regularizer (private)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

#: The reductions every loss and regularizer accepts. `"batchmean"` (the default of
#: BackwardCompatibilityML's KL classes) is an alias of `"mean"`: the per-sample values are already
#: summed over the classes.
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return `value` if it is one of `choices`, else raise a `ValueError` naming `name`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return str(value)


def check_reduction(reduction: str) -> str:
    """Validate `reduction` (one of `REDUCTIONS`, or the alias `"batchmean"`)."""
    if reduction == "batchmean":
        return "mean"
    return check_choice("reduction", reduction, REDUCTIONS)


def _as_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    return float(value)


def check_nonnegative(name: str, value: object) -> float:
    """Return `value` as a float if it is finite and `>= 0`, else raise a `ValueError` naming it."""
    number = _as_float(name, value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be finite and >= 0; got {value!r}")
    return number


def check_positive(name: str, value: object) -> float:
    """Return `value` as a float if it is finite and `> 0`, else raise a `ValueError` naming it."""
    number = _as_float(name, value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be finite and > 0; got {value!r}")
    return number


def check_probability(name: str, value: object) -> float:
    """Return `value` as a float if it lies in $[0, 1]$, else raise a `ValueError` naming it."""
    number = _as_float(name, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got {value!r}")
    return number


def reduce(values: Tensor, reduction: str) -> Tensor:
    """Apply the reduction rule to per-sample values of shape `(B,)`.

    `"mean"` divides the sum by the batch size $B$ (never by the size of a support set), `"sum"`
    is $B$ times that, and `"none"` returns the per-sample values unchanged.
    """
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def upcast(tensor: Tensor) -> Tensor:
    """Half and bfloat16 tensors as float32 (the math runs in float32 under autocast)."""
    if tensor.dtype in (torch.float16, torch.bfloat16):
        return tensor.float()
    return tensor

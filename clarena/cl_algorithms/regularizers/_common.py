"""Argument validation and the one reduction rule shared by every regularizer (private)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
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
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
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


# ---- input handling shared by the BC dissonance functions ----------------------------------
_LOG_CLAMP = -100.0  # as torch.nn.functional.binary_cross_entropy clamps log(p)


def safe_log(p: Tensor) -> Tensor:
    """$\\log p$ clamped at -100, with finite gradients at $p = 0$."""
    return torch.log(p.clamp_min(torch.finfo(p.dtype).tiny)).clamp_min(_LOG_CLAMP)


def check_batch(name: str, tensor: Tensor, batch: int, reference: str = "h2_output") -> None:
    """Raise a `ValueError` naming `name` if its batch size differs from `reference`'s."""
    if tensor.shape[0] != batch:
        raise ValueError(
            f"{name} has batch size {tensor.shape[0]} but {reference} has {batch}; "
            "pass outputs and targets of the same batch"
        )


def binary_column(name: str, tensor: Tensor) -> Tensor:
    """A binary output or label of shape `(B,)` or `(B, 1)` as `(B,)`; other shapes are refused."""
    if tensor.dim() == 2 and tensor.shape[1] == 1:
        return tensor[:, 0]
    if tensor.dim() != 1:
        raise ValueError(
            f"{name} must have shape (B,) or (B, 1) for a binary loss; got {tuple(tensor.shape)}"
        )
    return tensor


def check_multiclass(name: str, output: Tensor, target: Tensor) -> None:
    """Check a multi-class output `(B, K)` (called `name`) and its integer labels `(B,)`."""
    if output.dim() != 2:
        raise ValueError(
            f"{name} must have shape (B, num_classes) for a multi-class loss; "
            f"got {tuple(output.shape)}"
        )
    if target.dim() != 1:
        raise ValueError(f"target must have shape (B,); got {tuple(target.shape)}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(
            f"target must hold integer class indices for a multi-class loss; got {target.dtype} "
            "(use loss='binary_cross_entropy' for 0/1 float targets)"
        )
    check_batch("target", target, output.shape[0], name)


def log_probs(output: Tensor, output_kind: str, temperature: float = 1.0) -> Tensor:
    """$\\log \\mathrm{softmax}(z / T)$ from logits, log-probabilities or probabilities."""
    z = upcast(output)
    if output_kind == "probabilities":
        z = safe_log(z)
    if temperature != 1.0:
        z = z / temperature
    return F.log_softmax(z, dim=-1)


def log_sigmoids(
    output: Tensor, output_kind: str, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """$(\\log q, \\log(1 - q))$ with $q = \\sigma(z / T)$, from a logit or a probability."""
    z = upcast(output)
    if output_kind == "probabilities":
        log_q, log_not_q = safe_log(z), safe_log(1.0 - z)
        if temperature == 1.0:
            return log_q, log_not_q
        z = log_q - log_not_q  # the logit
    if temperature != 1.0:
        z = z / temperature
    return F.logsigmoid(z), F.logsigmoid(-z)

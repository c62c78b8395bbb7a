r"""The eight backward-compatibility losses, with BackwardCompatibilityML's names and calling style.

From Srivastava, Nushi, Kamar, Shah and Horvitz, *An Empirical Analysis of Backward Compatibility
in Machine Learning Systems* (KDD 2020). Code written for the original library keeps working:

```python
loss_fn = BCCrossEntropyLoss(h1, h2, lambda_c)   # h1 the frozen reference, h2 being trained
optimizer = torch.optim.SGD(h2.parameters(), lr=0.01, momentum=0.5)
for data, target in train_loader:
    optimizer.zero_grad()
    loss = loss_fn(data, target)
    loss.backward()
    optimizer.step()
```

Each class computes, with $B$ the batch size and $S$ the samples $h_1$ classifies correctly,

$$ L = \frac{1}{B} \sum_{i=1}^{B} \Big[ \ell(h_2(x_i), y_i)
      + \lambda_c \big(1[i \in S] + \alpha 1[i \notin S]\big) d_i \Big], $$

with $d_i = \ell(h_2(x_i), y_i)$ for the new-error classes (`BC*`, $\alpha = 0$) and the
divergence from $h_1$'s soft output to $h_2$'s for the strict-imitation classes (see
`clarena.cl_algorithms.regularizers.bc_dissonance`, where the math lives). `reduction="sum"`
gives $B$ times this and `"none"` the per-sample bracket.

Per call, $h_1$ runs once, under `torch.no_grad()` and in eval mode (its modules' modes are
restored afterwards), and $h_2$ runs exactly once. Nothing synchronises with the host. Models may
return a tensor of logits or the original library's triple `(logits, softmax, log_softmax)`.

Differences from the original, on purpose: $h_2$ is evaluated once, not twice; the strict-imitation
classes run $h_1$ without gradients and imitate its soft output (not its hard labels); the KL
classes compute $\mathrm{KL}(h_1 \| h_2)$ with the arguments in the right order; the dissonance is
divided by the batch size in every variant (the original divided by the support size). The
binary classes take one logit per sample by default; models ending in a sigmoid, as the original
expected, need `output="probabilities"`. The original's options `num_classes` (KL) and
`discriminan_pivot` (its spelling of `discriminant_pivot`) are accepted, and so is
`reduction="batchmean"` (the same as `"mean"` here).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from clarena.cl_algorithms.regularizers._common import (
    check_choice,
    check_nonnegative,
    check_positive,
    check_probability,
    check_reduction,
    reduce,
)
from clarena.cl_algorithms.regularizers.bc_dissonance import OUTPUTS, bc_loss_terms

__all__ = [
    "BCBinaryCrossEntropyLoss",
    "BCCrossEntropyLoss",
    "BCKLDivergenceLoss",
    "BCNLLLoss",
    "StrictImitationBinaryCrossEntropyLoss",
    "StrictImitationCrossEntropyLoss",
    "StrictImitationKLDivergenceLoss",
    "StrictImitationNLLLoss",
]


def _select(output: Any, output_kind: str) -> Tensor:
    """The tensor to use from a model's output: itself, or an element of a tuple.

    A tuple is read as `(logits, probabilities[, log_probabilities])`, the original library's
    convention: the probabilities when `output_kind="probabilities"`, otherwise the logits.
    """
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        if output_kind == "probabilities":
            if len(output) < 2:
                raise ValueError(
                    "output='probabilities' needs models returning a tensor of probabilities or "
                    "a tuple (logits, probabilities, ...)"
                )
            return output[1]
        return output[0]
    raise ValueError(
        f"models must return a tensor or a tuple (logits, softmax, log_softmax); got "
        f"{type(output).__name__}"
    )


class _BCLoss(nn.Module):
    """Shared machinery of the eight classes: run h1 and h2 once, then `bc_loss_terms`."""

    _loss: str = "cross_entropy"
    _strict: bool = False

    def __init__(
        self,
        h1: nn.Module,
        h2: nn.Module,
        lambda_c: float,
        *,
        reduction: str = "mean",
        temperature: float = 1.0,
        focal_alpha: float = 0.0,
        discriminant_pivot: float = 0.5,
        output: str = "logits",
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(h1, nn.Module):
            raise ValueError(f"h1 must be a torch.nn.Module; got {type(h1).__name__}")
        if not isinstance(h2, nn.Module):
            raise ValueError(f"h2 must be a torch.nn.Module; got {type(h2).__name__}")
        self.h1 = h1
        self.h2 = h2
        self.lambda_c = check_nonnegative("lambda_c", lambda_c)
        self.reduction = check_reduction(reduction)
        self.temperature = check_positive("temperature", temperature)
        self.focal_alpha = check_nonnegative("focal_alpha", focal_alpha)
        self.discriminant_pivot = check_probability("discriminant_pivot", discriminant_pivot)
        self.output = check_choice("output", output, OUTPUTS)
        if num_classes is not None and (isinstance(num_classes, bool) or num_classes < 1):
            raise ValueError(f"num_classes must be a positive int or None; got {num_classes!r}")
        self.num_classes = num_classes

    def _reference_output(self, x: Any) -> Any:
        """h1(x) once, without gradients, in eval mode; every module's mode is restored."""
        modes = [(module, module.training) for module in self.h1.modules()]
        switched = any(mode for _, mode in modes)
        if switched:
            self.h1.eval()
        try:
            with torch.no_grad():
                return self.h1(x)
        finally:
            if switched:
                for module, mode in modes:
                    module.training = mode

    def forward(self, x: Any, y: Tensor, reduction: str | None = None) -> Tensor:
        """The loss of `h2` on the batch `(x, y)` (see the module docstring).

        Args:
            x: The inputs, passed unchanged to both models.
            y: The labels: class indices `(B,)`, or 0/1 labels for the binary classes.
            reduction: Overrides the constructor's reduction for this call (`"batchmean"`, the
                original KL classes' default, means `"mean"`).
        """
        reduction = self.reduction if reduction is None else check_reduction(reduction)
        h1_output = _select(self._reference_output(x), self.output)
        h2_output = _select(self.h2(x), self.output)
        if self.num_classes is not None and h2_output.shape[-1] != self.num_classes:
            raise ValueError(
                f"num_classes is {self.num_classes} but h2 gives {h2_output.shape[-1]} outputs"
            )
        base, dissonance = bc_loss_terms(
            h2_output,
            h1_output,
            y,
            self._loss,
            self.lambda_c,
            self._strict,
            self.temperature,
            self.focal_alpha,
            self.discriminant_pivot,
            self.output,
        )
        return reduce(base + dissonance, reduction)

    def extra_repr(self) -> str:
        return f"lambda_c={self.lambda_c}, reduction={self.reduction!r}"


class _NewError(_BCLoss):
    def __init__(
        self,
        h1: nn.Module,
        h2: nn.Module,
        lambda_c: float,
        reduction: str = "mean",
        num_classes: int | None = None,
    ) -> None:
        super().__init__(h1, h2, lambda_c, reduction=reduction, num_classes=num_classes)


class _StrictImitation(_BCLoss):
    _strict = True

    def __init__(
        self,
        h1: nn.Module,
        h2: nn.Module,
        lambda_c: float,
        temperature: float = 1.0,
        focal_alpha: float = 0.0,
        reduction: str = "mean",
        num_classes: int | None = None,
    ) -> None:
        super().__init__(
            h1,
            h2,
            lambda_c,
            reduction=reduction,
            temperature=temperature,
            focal_alpha=focal_alpha,
            num_classes=num_classes,
        )


def _pivot(discriminant_pivot: float, discriminan_pivot: float | None) -> float:
    """`discriminan_pivot` is the original library's spelling, accepted so its code still runs."""
    return discriminant_pivot if discriminan_pivot is None else discriminan_pivot


class BCNLLLoss(_NewError):
    """New-error loss over the negative log-likelihood (inputs: log-probabilities or logits).

    Args:
        h1: The frozen reference model.
        h2: The model being trained.
        lambda_c: Strength $\\lambda_c$ of the dissonance, finite and `>= 0`.
        reduction: `"mean"`, `"sum"` or `"none"`.
        num_classes: Optional check of the number of outputs.
    """

    _loss = "nll"


class BCCrossEntropyLoss(_NewError):
    """New-error loss over the cross-entropy of logits. Arguments as `BCNLLLoss`."""

    _loss = "cross_entropy"


class BCKLDivergenceLoss(_NewError):
    """New-error loss over $\\mathrm{KL}(\\mathrm{onehot}(y) \\| p_2)$. Arguments as `BCNLLLoss`."""

    _loss = "kl_div"


class BCBinaryCrossEntropyLoss(_BCLoss):
    """New-error loss over the binary cross-entropy of one output per sample.

    Models take one logit per sample by default. BackwardCompatibilityML's binary models end in a
    sigmoid: for them pass `output="probabilities"` (the value cannot be inferred from the
    tensor without a host synchronisation).

    Args:
        h1: The frozen reference model.
        h2: The model being trained; one logit per sample, `(B,)` or `(B, 1)`.
        lambda_c: Strength $\\lambda_c$, finite and `>= 0`.
        discriminant_pivot: $h_1$ predicts 1 where its probability is `>= discriminant_pivot`.
        output: `"logits"` or `"probabilities"` (models ending in a sigmoid, as in the original).
        reduction: `"mean"`, `"sum"` or `"none"`.
        discriminan_pivot: The original library's spelling of `discriminant_pivot`.
    """

    _loss = "binary_cross_entropy"

    def __init__(
        self,
        h1: nn.Module,
        h2: nn.Module,
        lambda_c: float,
        discriminant_pivot: float = 0.5,
        output: str = "logits",
        reduction: str = "mean",
        discriminan_pivot: float | None = None,
    ) -> None:
        super().__init__(
            h1,
            h2,
            lambda_c,
            reduction=reduction,
            discriminant_pivot=_pivot(discriminant_pivot, discriminan_pivot),
            output=output,
        )


class StrictImitationNLLLoss(_StrictImitation):
    """Strict imitation over the NLL: $d_i = -\\sum_k p^{(1)}_{ik} \\log p^{(2)}_{ik}$.

    Args:
        h1: The frozen reference model.
        h2: The model being trained.
        lambda_c: Strength $\\lambda_c$, finite and `>= 0`.
        temperature: Temperature $T > 0$ of both soft outputs in the divergence.
        focal_alpha: Weight $\\alpha \\ge 0$ of the divergence outside the support (PCT).
        reduction: `"mean"`, `"sum"` or `"none"`.
        num_classes: Optional check of the number of outputs.
    """

    _loss = "nll"


class StrictImitationCrossEntropyLoss(_StrictImitation):
    """Strict imitation over the cross-entropy (soft targets from $h_1$). Arguments as NLL's."""

    _loss = "cross_entropy"


class StrictImitationKLDivergenceLoss(_StrictImitation):
    """Strict imitation over $\\mathrm{KL}(p^{(1)} \\| p^{(2)})$. Arguments as NLL's."""

    _loss = "kl_div"


class StrictImitationBinaryCrossEntropyLoss(_BCLoss):
    """Strict imitation over the BCE: $d_i = -[q_1 \\log q_2 + (1-q_1)\\log(1-q_2)]$.

    Models take one logit per sample by default. BackwardCompatibilityML's binary models end in a
    sigmoid: for them pass `output="probabilities"` (the value cannot be inferred from the
    tensor without a host synchronisation).

    Args:
        h1: The frozen reference model.
        h2: The model being trained; one output per sample, `(B,)` or `(B, 1)`.
        lambda_c: Strength $\\lambda_c$, finite and `>= 0`.
        temperature: Temperature $T > 0$ of both sigmoids in the divergence.
        focal_alpha: Weight $\\alpha \\ge 0$ of the divergence outside the support.
        discriminant_pivot: $h_1$ predicts 1 where its probability is `>= discriminant_pivot`.
        output: `"logits"` or `"probabilities"`.
        reduction: `"mean"`, `"sum"` or `"none"`.
        discriminan_pivot: The original library's spelling of `discriminant_pivot`.
    """

    _loss = "binary_cross_entropy"
    _strict = True

    def __init__(
        self,
        h1: nn.Module,
        h2: nn.Module,
        lambda_c: float,
        temperature: float = 1.0,
        focal_alpha: float = 0.0,
        discriminant_pivot: float = 0.5,
        output: str = "logits",
        reduction: str = "mean",
        discriminan_pivot: float | None = None,
    ) -> None:
        super().__init__(
            h1,
            h2,
            lambda_c,
            reduction=reduction,
            temperature=temperature,
            focal_alpha=focal_alpha,
            discriminant_pivot=_pivot(discriminant_pivot, discriminan_pivot),
            output=output,
        )

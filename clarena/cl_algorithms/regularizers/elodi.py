r"""Logit difference inhibition (LDI), the distillation term of ELODI.

From Zhao, Shen, Xiong, Yang, Xia, Tu, Schiele and Soatto, *ELODI: Ensemble Logit Difference
Inhibition for Positive-Congruent Training* (CVPR 2022; TPAMI 2024). ELODI trains the update
$h_2$ towards the mean logits $\bar z = \frac{1}{M} \sum_{m=1}^{M} z^{(m)}$ of a homogeneous
ensemble of $M$ reference models (an ensemble has far fewer negative flips than its members, and
the distilled single model inherits much of that), and it penalises only the logit differences
that can flip a prediction: those of the classes ranked highest by either model, and only where
they exceed a margin. With $z$ the student's logits, $\Delta_{ik} = z_{ik} - \bar z_{ik}$ and $B$
the batch size,

$$ R = \frac{\lambda}{B} \sum_{i=1}^{B} \sum_{k \in S_i}
   1\big[|\Delta_{ik}| > \xi\big] \, \frac{1}{p} |\Delta_{ik}|^{p},
   \qquad S_i = \mathrm{top}_K(z_i) \cup \mathrm{top}_K(\bar z_i), $$

where $\mathrm{top}_K$ is the set of the $K$ largest logits of a row, $\xi \ge 0$ the margin and
$p \ge 1$ the norm. With $K$ equal to the number of classes, $\xi = 0$ and $p = 2$ the term is
the logit matching of FD-LM with weight 1 on every sample
(`clarena.cl_algorithms.regularizers.focal_distillation`). The gradient with respect to the
student's logits is $\frac{\lambda}{B} 1[k \in S_i, |\Delta_{ik}| > \xi]\,
|\Delta_{ik}|^{p - 1} \mathrm{sign}(\Delta_{ik})$; the set $S_i$ is chosen without gradient and
the ensemble is detached (it never receives a gradient). Both the top-K set and the margin are
multiplicative masks, so nothing synchronises with the host and the function compiles with
`torch.compile(fullgraph=True)`.
"""

from __future__ import annotations

from torch import Tensor, nn

from clarena.cl_algorithms.regularizers._common import (
    check_nonnegative,
    check_reduction,
    reduce,
    upcast,
)


def _check_top_k(top_k: object) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1; got {top_k!r}")
    return top_k


def _check_norm(p: object) -> float:
    value = check_nonnegative("p", p)
    if value < 1:
        raise ValueError(f"p must be >= 1 (a norm); got {p!r}")
    return value


def ensemble_logits(reference_logits: Tensor) -> Tensor:
    r"""$\bar z$: the mean over the members of `(M, B, K)` logits, or `(B, K)` logits as they are
    (a single reference model, or an ensemble's mean computed already); detached."""
    reference = upcast(reference_logits.detach())
    if reference.dim() == 3:
        return reference.mean(dim=0)
    if reference.dim() != 2:
        raise ValueError(
            "reference_logits must have shape (B, num_classes) or (members, B, num_classes); "
            f"got {tuple(reference_logits.shape)}"
        )
    return reference


def top_k_union(student_logits: Tensor, reference: Tensor, top_k: int) -> Tensor:
    r"""The mask of $S_i = \mathrm{top}_K(z_i) \cup \mathrm{top}_K(\bar z_i)$, `(B, K)`, in the
    student's dtype (1 inside, 0 outside), chosen without gradient."""
    k = min(top_k, student_logits.shape[-1])
    student = student_logits.detach()
    mask = student.new_zeros(student.shape)
    mask.scatter_(1, student.topk(k, dim=1).indices, 1.0)
    mask.scatter_(1, reference.topk(k, dim=1).indices, 1.0)
    return mask


def logit_difference_inhibition(
    student_logits: Tensor,
    reference_logits: Tensor,
    factor: float,
    top_k: int = 3,
    margin: float = 0.0,
    p: float = 2.0,
    reduction: str = "mean",
) -> Tensor:
    r"""LDI of the student's logits towards the ensemble's (see the module docstring).

    Args:
        student_logits: Logits of the model being trained, `(B, K)`.
        reference_logits: The reference ensemble's logits, `(M, B, K)` (averaged over the $M$
            members here) or their mean `(B, K)`; detached here.
        factor: Strength $\lambda$, finite and `>= 0`.
        top_k: $K \ge 1$, the classes taken from each model's ranking (capped at the number of
            classes).
        margin: $\xi \ge 0$; differences at or below it are not penalised.
        p: The norm $p \ge 1$.
        reduction: `"mean"` (divide by $B$), `"sum"` or `"none"` (per-sample values).

    Returns:
        A scalar (or `(B,)` with `"none"`), float32 for half-precision inputs.

    Raises:
        ValueError: On logits of different shapes, a negative factor or margin, `top_k < 1`,
            `p < 1`, or an unknown reduction.
    """
    factor = check_nonnegative("factor", factor)
    top_k = _check_top_k(top_k)
    margin = check_nonnegative("margin", margin)
    p = _check_norm(p)
    reduction = check_reduction(reduction)
    reference = ensemble_logits(reference_logits)
    if student_logits.dim() != 2 or reference.shape != student_logits.shape:
        raise ValueError(
            f"the ensemble's logits have shape {tuple(reference.shape)} (members averaged) but "
            f"student_logits has {tuple(student_logits.shape)}; both must be (B, num_classes) "
            "over the same classes"
        )
    student = upcast(student_logits)
    difference = (student - reference).abs()
    selected = top_k_union(student, reference, top_k) * (difference.detach() > margin).to(
        student.dtype
    )
    per_class = difference.pow(p) / p if p != 1.0 else difference
    return reduce(factor * (selected * per_class).sum(dim=-1), reduction)


class LogitDifferenceInhibitionReg(nn.Module):
    """LDI as a module; `forward(student_logits, reference_logits)` is
    `logit_difference_inhibition`.

    Args:
        factor: Strength $\\lambda$, finite and `>= 0`.
        top_k: $K \\ge 1$.
        margin: $\\xi \\ge 0$.
        p: The norm $p \\ge 1$.
        reduction: `"mean"`, `"sum"` or `"none"`.

    Raises:
        ValueError: On a negative factor or margin, `top_k < 1`, `p < 1` or an unknown reduction.
    """

    def __init__(
        self,
        factor: float,
        top_k: int = 3,
        margin: float = 0.0,
        p: float = 2.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.factor = check_nonnegative("factor", factor)
        self.top_k = _check_top_k(top_k)
        self.margin = check_nonnegative("margin", margin)
        self.p = _check_norm(p)
        self.reduction = check_reduction(reduction)

    def forward(self, student_logits: Tensor, reference_logits: Tensor) -> Tensor:
        """The LDI term of `student_logits` towards the ensemble's `reference_logits`."""
        return logit_difference_inhibition(
            student_logits,
            reference_logits,
            self.factor,
            self.top_k,
            self.margin,
            self.p,
            self.reduction,
        )

    def extra_repr(self) -> str:
        return f"factor={self.factor}, top_k={self.top_k}, margin={self.margin}, p={self.p}"

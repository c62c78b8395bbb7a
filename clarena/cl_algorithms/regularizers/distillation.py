r"""Knowledge distillation from a frozen teacher's logits: LwF's cross-entropy and DER's MSE.

- `distance="cross_entropy"`: the modified cross-entropy of Learning without Forgetting (Li and
  Hoiem, *Learning without Forgetting*, TPAMI 2017, eq. 3). With
  $p = \mathrm{softmax}(z_s / T)$ and $q = \mathrm{softmax}(z_t / T)$ (raising a softmax to $1/T$
  and renormalising is the same thing),
  $$ R = \text{factor} \cdot \frac{1}{B} \sum_{i=1}^{B} \Big(-\sum_k q_{ik} \log p_{ik}\Big). $$
  The published form adds $\varepsilon = 10^{-5}$ to $p$ before the log; here the log is taken
  in log space ($\log p = \log\mathrm{softmax}(z_s / T)$), which agrees with it to about
  $10^{-4}$ relative on ordinary logits and stays finite for extreme ones.
- `distance="MSE"`: Dark Experience Replay (Buzzega et al., *Dark Experience for General
  Continual Learning: a Strong, Simple Baseline*, NeurIPS 2020, eq. 5),
  $$ R = \text{factor} \cdot \frac{1}{BK} \sum_{i, k} (z_{s, ik} - z_{t, ik})^2, $$
  the mean squared difference of the logits; the temperature plays no part.

The teacher's logits are detached: the teacher never receives a gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clarena.cl_algorithms.regularizers._common import (
    check_choice,
    check_nonnegative,
    check_positive,
    upcast,
)

#: The distances `DistillationReg` accepts.
DISTANCES: tuple[str, ...] = ("cross_entropy", "MSE")


def distillation_reg(
    student_logits: Tensor,
    teacher_logits: Tensor,
    factor: float,
    temperature: float = 2.0,
    distance: str = "cross_entropy",
) -> Tensor:
    """Distillation regularizer (see the module docstring for the formulas).

    Args:
        student_logits: Logits of the model being trained, `(B, K)` (any leading shape works; the
            classes are the last dimension).
        teacher_logits: Logits of the frozen teacher, same shape; detached here.
        factor: Weight of the term, finite and `>= 0`.
        temperature: Softmax temperature $T > 0$ of the cross-entropy distance.
        distance: `"cross_entropy"` (LwF) or `"MSE"` (DER).

    Returns:
        A scalar tensor (float32 for half-precision inputs).

    Raises:
        ValueError: On an unknown distance, a non-positive temperature, a negative or non-finite
            factor, or logits of different shapes.
    """
    factor = check_nonnegative("factor", factor)
    temperature = check_positive("temperature", temperature)
    check_choice("distance", distance, DISTANCES)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"teacher_logits has shape {tuple(teacher_logits.shape)} but student_logits has "
            f"{tuple(student_logits.shape)}; distil logits of the same classes"
        )
    student = upcast(student_logits)
    teacher = upcast(teacher_logits.detach())
    if distance == "MSE":
        return factor * F.mse_loss(student, teacher)
    log_p = F.log_softmax(student / temperature, dim=-1)
    q = F.softmax(teacher / temperature, dim=-1)
    return factor * -(q * log_p).sum(dim=-1).mean()


class DistillationReg(nn.Module):
    """Distillation regularizer as a module; `forward` is `distillation_reg`.

    Args:
        factor: Weight of the term, finite and `>= 0`.
        temperature: Softmax temperature $T > 0$ (cross-entropy distance only).
        distance: `"cross_entropy"` (LwF) or `"MSE"` (DER).

    Raises:
        ValueError: On an unknown distance, a non-positive temperature or a negative factor.
    """

    def __init__(
        self, factor: float, temperature: float = 2.0, distance: str = "cross_entropy"
    ) -> None:
        super().__init__()
        self.factor = check_nonnegative("factor", factor)
        self.temperature = check_positive("temperature", temperature)
        self.distance = check_choice("distance", distance, DISTANCES)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """The distillation term of `student_logits` towards `teacher_logits`."""
        return distillation_reg(
            student_logits, teacher_logits, self.factor, self.temperature, self.distance
        )

    def extra_repr(self) -> str:
        return f"factor={self.factor}, temperature={self.temperature}, distance={self.distance!r}"


def stored_logit_distance(
    distillation: nn.Module, logits: Tensor, stored: Tensor, widths: Tensor
) -> Tensor:
    """`distillation` between current logits and stored ones over the columns each stored row
    covers, as DER needs it: both are padded to the wider width, the entries of
    row $i$ at columns $j \\ge w_i$ (its stored width) are made equal, and the mean is
    renormalised to the covered entries, $d \\cdot \\frac{N \\cdot W}{\\sum_i \\min(w_i, W)}$.

    Args:
        distillation: the distance, `forward(student, teacher)` (e.g.
            `DistillationReg(alpha, distance="MSE")`).
        logits: the current logits of the replayed samples, shape (N, C).
        stored: the logits stored with them, shape (N, C').
        widths: each stored row's width $w_i$, shape (N,).

    Returns:
        The renormalised distance, a scalar.
    """
    width = max(logits.shape[1], stored.shape[1])
    logits = F.pad(logits, (0, width - logits.shape[1]))
    stored = F.pad(stored.to(logits.dtype), (0, width - stored.shape[1]))
    covered = torch.arange(width, device=logits.device) < widths.unsqueeze(1)
    value = distillation(torch.where(covered, logits, stored), stored)
    return value * (covered.numel() / covered.sum().clamp_min(1))

"""FocalDistillation: backward-compatible training with PCT's focal distillation (FD-KL, FD-LM)."""

from __future__ import annotations

from typing import Any

from clarena.cl_algorithms.bc_base import BCAlgorithm, check_multiclass_loss
from clarena.cl_algorithms.regularizers import FocalDistillationKLReg, FocalDistillationLMReg

#: The distances `FocalDistillation` accepts: `"kl"` (FD-KL) and `"lm"` (FD-LM, logit matching).
FD_DISTANCES: tuple[str, ...] = ("kl", "lm")


class FocalDistillation(BCAlgorithm):
    """`BCAlgorithm` with the focal distillation of Positive-Congruent Training (Yan et al.,
    CVPR 2021) as its regulariser: h2 is distilled towards h1 on every sample $i \\in D$, with the
    samples h1 classifies correctly weighted $\\alpha + \\beta$ and the others $\\alpha$,

    $$R = \\frac{\\lambda_c}{|D|} \\sum_{i \\in D}
    \\big(\\alpha + \\beta\\, 1[\\hat y_1(x_i) = y_i]\\big)\\, d_i,$$

    with $d_i = \\mathrm{KL}(\\mathrm{softmax}(z_1 / T) \\| \\mathrm{softmax}(z_2 / T))$ for
    `distance="kl"` (`FocalDistillationKLReg`) or
    $d_i = \\frac{1}{2} \\| z_2 - z_1 \\|^2$ for `distance="lm"` (`FocalDistillationLMReg`).
    The underlying `loss` of `BCAlgorithm` is unused (the task loss is cross-entropy).

    Args:
        distance: `"kl"` or `"lm"`.
        alpha: $\\alpha \\ge 0$, the weight of every sample.
        beta: $\\beta \\ge 0$, the extra weight of the samples h1 gets right.
        temperature: $T > 0$ of FD-KL's soft outputs (unused by FD-LM).
        loss: accepted for the configuration's sake (checked, unused).
        lambda_c: $\\lambda_c \\ge 0$.
        **kwargs: as `clarena.cl_algorithms.bc_base.BCAlgorithm` (replay buffer options).

    Raises:
        ValueError: On an unknown distance or a negative $\\alpha$, $\\beta$ or $\\lambda_c$.
    """

    def __init__(
        self,
        *args: Any,
        distance: str = "kl",
        alpha: float = 1.0,
        beta: float = 5.0,
        temperature: float = 1.0,
        loss: str = "cross_entropy",
        lambda_c: float = 1.0,
        **kwargs: Any,
    ) -> None:
        if distance not in FD_DISTANCES:
            raise ValueError(
                f"FocalDistillation: distance must be one of {FD_DISTANCES}; got {distance!r}"
            )
        check_multiclass_loss("FocalDistillation", loss)
        regularizer: FocalDistillationKLReg | FocalDistillationLMReg
        if distance == "lm":
            regularizer = FocalDistillationLMReg(lambda_c, alpha, beta)
        else:
            regularizer = FocalDistillationKLReg(lambda_c, alpha, beta, temperature)
        super().__init__(*args, regularizer=regularizer, **kwargs)

"""StrictImitation: continual training with the strict-imitation BC dissonance."""

from __future__ import annotations

from typing import Any

from clarena.cl_algorithms.bc_base import BCAlgorithm, check_multiclass_loss
from clarena.cl_algorithms.regularizers import StrictImitationReg


class StrictImitation(BCAlgorithm):
    """`BCAlgorithm` with the strict-imitation dissonance `StrictImitationReg`: on the samples h1
    classifies correctly (and, with weight $\\alpha$, on the others: the focal distillation of
    Positive-Congruent Training, Yan et al., CVPR 2021), h2's soft output imitates h1's,

    $$R = \\frac{\\lambda_c}{|D|} \\sum_{i \\in D}
    \\big(1[i \\in S] + \\alpha\\, 1[i \\notin S]\\big)
    \\Big(-\\sum_k p^{(1)}_{ik} \\log p^{(2)}_{ik}\\Big),
    \\quad p^{(j)} = \\mathrm{softmax}(z_j / T)$$

    (the KL divergence for `loss="kl_div"`).

    Args:
        loss: underlying loss (`"cross_entropy"`, `"nll"`, `"kl_div"`).
        lambda_c: $\\lambda_c$.
        temperature: $T > 0$ of both soft outputs.
        focal_alpha: $\\alpha \\ge 0$.
        **kwargs: as `clarena.cl_algorithms.bc_base.BCAlgorithm` (replay buffer options).
    """

    def __init__(
        self,
        *args: Any,
        loss: str = "cross_entropy",
        lambda_c: float = 1.0,
        temperature: float = 1.0,
        focal_alpha: float = 0.0,
        **kwargs: Any,
    ) -> None:
        check_multiclass_loss("StrictImitation", loss)
        regularizer = StrictImitationReg(loss, lambda_c, temperature, focal_alpha)
        super().__init__(*args, regularizer=regularizer, **kwargs)

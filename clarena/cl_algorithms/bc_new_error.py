"""BCNewError: continual training with the new-error backward-compatibility dissonance."""

from __future__ import annotations

from typing import Any

from clarena.cl_algorithms.bc_base import BCAlgorithm, check_multiclass_loss
from clarena.cl_algorithms.regularizers import BCNewErrorReg


class BCNewError(BCAlgorithm):
    """`BCAlgorithm` with the new-error dissonance `BCNewErrorReg`: $d_i = \\ell(h_2(x_i), y_i)$
    weighted by $1[i \\in S]$, the samples h1 classifies correctly (Srivastava et al., KDD 2020),

    $$R = \\frac{\\lambda_c}{|D|} \\sum_{i \\in D} 1[i \\in S]\\, \\ell(h_2(x_i), y_i).$$

    Args:
        loss: underlying loss (`"cross_entropy"`, `"nll"`, `"kl_div"`).
        lambda_c: $\\lambda_c$.
        **kwargs: as `clarena.cl_algorithms.bc_base.BCAlgorithm` (replay buffer options).
    """

    def __init__(
        self, *args: Any, loss: str = "cross_entropy", lambda_c: float = 1.0, **kwargs: Any
    ) -> None:
        check_multiclass_loss("BCNewError", loss)
        super().__init__(*args, regularizer=BCNewErrorReg(loss, lambda_c), **kwargs)

"""BCNewError: continual training with the new-error backward-compatibility dissonance."""

from __future__ import annotations

from torch import nn

from clarena.cl_algorithms.bc_base import BCAlgorithm
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

    def make_regularizer(self, loss: str, lambda_c: float) -> nn.Module:
        """`BCNewErrorReg(loss, lambda_c)`."""
        return BCNewErrorReg(loss, lambda_c)

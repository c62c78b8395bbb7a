"""DER++: Dark Experience Replay plus replayed labels."""

from __future__ import annotations

from typing import Any

from clarena.cl_algorithms.der import DER
from clarena.cl_algorithms.terms import ReplayCrossEntropy


class DERPP(DER):
    """DER++ (Buzzega et al., NeurIPS 2020, eq. 6): DER plus the cross-entropy of a second replayed
    batch's labels,

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\alpha\\, \\mathrm{MSE}(f(x_b), z_b)
    + \\beta\\, \\mathrm{CE}(f(x_{b'}), y_{b'}),$$

    the two replayed batches drawn independently from the buffer. Supports every scenario.
    DER's composition plus the term `replay_ce` (`terms.ReplayCrossEntropy(beta,
    independent=True)`). Loss terms: `ce`, `logit_replay`, `replay_ce`.

    Args:
        beta: $\\beta$, the weight of the replayed labels' cross-entropy.
        **kwargs: as `DER` (`buffer_size`, `alpha`, ...).
    """

    def __init__(self, *args: Any, beta: float = 0.5, **kwargs: Any) -> None:
        if not beta >= 0:
            raise ValueError(f"DERPP: beta must be ≥ 0, got {beta}.")
        label_replay = ReplayCrossEntropy(beta, independent=True)
        super().__init__(*args, more_terms={"replay_ce": label_replay}, **kwargs)
        self.beta = float(beta)

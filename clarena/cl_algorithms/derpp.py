"""DER++: Dark Experience Replay plus replayed labels."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clarena.cl_algorithms.der import DER


class DERPP(DER):
    """DER++ (Buzzega et al., NeurIPS 2020, eq. 6): DER plus the cross-entropy of a second replayed
    batch's labels,

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\alpha\\, \\mathrm{MSE}(f(x_b), z_b)
    + \\beta\\, \\mathrm{CE}(f(x_{b'}), y_{b'}),$$

    the two replayed batches drawn independently from the buffer. Supports every scenario.
    Loss terms: `ce`, `logit_replay`, `replay_ce`.

    Args:
        beta: $\\beta$, the weight of the replayed labels' cross-entropy.
        **kwargs: as `DER` (`buffer_size`, `alpha`, ...).
    """

    def __init__(self, *args: Any, beta: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not beta >= 0:
            raise ValueError(f"DERPP: beta must be ≥ 0, got {beta}.")
        self.beta = float(beta)

    def extra_replay_terms(self, n: int, device: torch.device) -> dict[str, Tensor]:
        """$\\beta$ · cross-entropy of a second replayed batch (0 while the buffer is empty)."""
        replay = self._replay(n, device)
        if replay is None:
            return {"replay_ce": torch.zeros((), device=device)}
        logits = self(replay["x"], replay["task_ids"])
        return {"replay_ce": self.beta * F.cross_entropy(logits, replay["y"])}

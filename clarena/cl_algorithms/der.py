"""Dark Experience Replay: replay with the logits stored at insertion time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clarena.cl_algorithms.composed import Composed
from clarena.cl_algorithms.regularizers import DistillationReg
from clarena.cl_algorithms.terms import CrossEntropy, LogitReplay, Term


class DER(Composed):
    """Dark Experience Replay (Buzzega et al., NeurIPS 2020, eq. 5): a reservoir buffer keeps
    samples with the logits the model gave them when they were seen, and the model is pulled
    towards them,

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\alpha\\, \\mathrm{MSE}(f(x_b), z_b),
    \\qquad (x_b, z_b) \\sim \\mathcal{M},$$

    the second term being `DistillationReg(α, distance="MSE")`. Stored logits are compared only over
    the classes they cover: in CIL a sample stored when the head had $k$ classes is compared over
    those $k$ columns (the mean runs over the covered entries only; `stored_logit_distance`).
    The current and the replayed batch go through the model separately (BatchNorm sees each
    alone). Supports every scenario. A thin composition: the terms `ce` (`terms.CrossEntropy`)
    and `logit_replay` (`terms.LogitReplay`). Loss terms: `ce`, `logit_replay`.

    Args:
        buffer_size: the buffer's capacity.
        alpha: $\\alpha$, the weight of the logit-matching term.
        replay_batch_size: samples drawn from the buffer per step (default: the batch size).
        class_balanced: use class-balancing reservoir sampling.
        buffer_seed: seed of the buffer's own random generator.
        more_terms: terms after DER's two (DER++ adds its label replay).
    """

    def __init__(
        self,
        *args: Any,
        buffer_size: int = 200,
        alpha: float = 0.3,
        replay_batch_size: int | None = None,
        class_balanced: bool = False,
        buffer_seed: int = 0,
        more_terms: Mapping[str, Term] | None = None,
        **kwargs: Any,
    ) -> None:
        terms: dict[str, Term] = {
            "ce": CrossEntropy(),
            "logit_replay": LogitReplay(DistillationReg(alpha, distance="MSE")),
            **(more_terms or {}),
        }
        super().__init__(
            *args,
            terms=terms,
            buffer_size=buffer_size,
            replay_batch_size=replay_batch_size,
            class_balanced=class_balanced,
            buffer_seed=buffer_seed,
            replay_forward="separate",
            **kwargs,
        )

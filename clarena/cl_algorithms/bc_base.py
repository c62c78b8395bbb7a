"""Shared machinery of the backward-compatibility algorithms (`BCNewError`, `StrictImitation`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from clarena.cl_algorithms.composed import Composed
from clarena.cl_algorithms.terms import CrossEntropy, Dissonance, ReplayCrossEntropy, Term

MULTICLASS_LOSSES: tuple[str, ...] = ("nll", "cross_entropy", "kl_div")
"""The underlying BC losses that apply to multi-class heads."""


def check_multiclass_loss(who: str, loss: str) -> str:
    """`loss` when it applies to multi-class heads; a ValueError naming `who` otherwise."""
    if loss not in MULTICLASS_LOSSES:
        raise ValueError(
            f"{who}: loss {loss!r} does not apply to multi-class heads; choose one of "
            f"{MULTICLASS_LOSSES}."
        )
    return loss


class BCAlgorithm(Composed):
    """Cross-entropy on the task plus a BC dissonance regulariser against h1, the frozen model from
    before the current task (Srivastava et al., KDD 2020; SPEC §2):

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\beta\\, \\mathrm{CE}(f(x_b), y_b)
    + \\frac{\\lambda_c}{|D|} \\sum_{i \\in D} w_i\\, d_i ,$$

    where the last term is the regulariser (`dissonance`) over the samples $D$ it applies to:
    in DIL / DataIL every sample of the batch (current and replayed), since h1 knows every class;
    in TIL / CIL only replayed samples of earlier tasks, the classes h1 knows (a replay buffer is
    then required). In CIL, h1's logits are padded with `PAD_LOGIT` for the classes it never saw
    (probability 0). The replay term is present only with a buffer. With $\\lambda_c = 0$ the
    algorithm is Finetuning (no buffer) or ER (with one), step for step.
    A thin composition: the terms `ce` (`terms.CrossEntropy`), `replay_ce`
    (`terms.ReplayCrossEntropy`, with a buffer) and `dissonance` (`terms.Dissonance` of the
    subclass's regulariser), the current and replayed batch in one forward pass.
    Loss terms: `ce`, `replay_ce` (with a buffer), `dissonance`.

    Args:
        regularizer: the dissonance, `forward(h2_output, h1_output, target)`.
        buffer_size: replay buffer capacity (0: no buffer; TIL and CIL need one).
        replay_batch_size: samples drawn from the buffer per step (default: the batch size).
        replay_weight: $\\beta$.
        class_balanced: use class-balancing reservoir sampling.
        buffer_seed: seed of the buffer's own random generator.
    """

    def __init__(
        self,
        *args: Any,
        regularizer: nn.Module,
        buffer_size: int = 0,
        replay_batch_size: int | None = None,
        replay_weight: float = 1.0,
        class_balanced: bool = False,
        buffer_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if replay_weight < 0:
            raise ValueError(
                f"{type(self).__name__}: replay_weight must be ≥ 0, got {replay_weight}."
            )
        terms: dict[str, Term] = {"ce": CrossEntropy()}
        if buffer_size > 0:
            terms["replay_ce"] = ReplayCrossEntropy(replay_weight)
        terms["dissonance"] = Dissonance(regularizer)
        super().__init__(
            *args,
            terms=terms,
            buffer_size=buffer_size,
            replay_batch_size=replay_batch_size,
            class_balanced=class_balanced,
            buffer_seed=buffer_seed,
            **kwargs,
        )
        self.replay_weight = float(replay_weight)

    @property
    def dissonance(self) -> nn.Module:
        """The dissonance regulariser (of the term `dissonance`)."""
        return self.terms["dissonance"].regularizer  # type: ignore[return-value]

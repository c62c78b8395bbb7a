"""Experience Replay with a reservoir buffer (or the reference's per-class memory)."""

from __future__ import annotations

from typing import Any

from clarena.cl_algorithms.composed import Composed
from clarena.cl_algorithms.terms import CrossEntropy, ReplayCrossEntropy


class ER(Composed):
    """Experience Replay (Chaudhry et al., "On tiny episodic memories in continual learning", 2019;
    Riemer et al., 2019): every training batch is joined by a batch drawn from a buffer filled by
    reservoir sampling over the whole stream,

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\beta\\, \\mathrm{CE}(f(x_b), y_b),
    \\qquad (x_b, y_b) \\sim \\mathcal{M}.$$

    The current and replayed samples go through the model in one forward pass (BatchNorm sees
    both). A thin composition of the terms `ce` (`terms.CrossEntropy`) and `replay_ce`
    (`terms.ReplayCrossEntropy`). Supports every scenario. Loss terms: `ce`, `replay_ce`.

    With `budget_per_class` the memory is instead the reference implementation's of van de Ven et
    al. (2022): `ClassMemory`, that many random samples of each class stored at the end of each
    task, only earlier tasks replayed (in TIL $\\lceil B/(t-1) \\rceil$ of each); with `memory_size`
    it is a `ClassMemory` of that total size shared evenly by the classes seen so far. With
    `weighting="1/t"` the terms are weighed as there, $\\frac{1}{t}\\,\\mathrm{CE} +
    \\big(1 - \\frac{1}{t}\\big)\\,\\beta\\,\\mathrm{CE}_{replay}$ on task $t$.

    Args:
        buffer_size: the reservoir buffer's capacity $|\\mathcal{M}|$ (without
            `budget_per_class`).
        replay_batch_size: samples drawn from the buffer per step (default: the batch size).
        replay_weight: $\\beta$.
        class_balanced: use class-balancing reservoir sampling.
        buffer_seed: seed of the buffer's own random generator.
        budget_per_class: store this many samples per class at each task's end (`ClassMemory`)
            instead of the reservoir buffer.
        memory_size: instead, a `ClassMemory` of this total size, shared evenly by the classes
            seen so far (Avalanche's `ReplayPlugin` balances its memory this way by experience).
        weighting: `"sum"` (CE + β CE_replay) or `"1/t"` (the reference's relative weights).
        *args: `backbone, heads, optimizer, scenario` as `CLAlgorithm`.
        **kwargs: as `CLAlgorithm`.
    """

    def __init__(
        self,
        *args: Any,
        buffer_size: int = 200,
        replay_batch_size: int | None = None,
        replay_weight: float = 1.0,
        class_balanced: bool = False,
        buffer_seed: int = 0,
        budget_per_class: int | None = None,
        memory_size: int | None = None,
        weighting: str = "sum",
        **kwargs: Any,
    ) -> None:
        if replay_weight < 0 or (replay_batch_size is not None and replay_batch_size <= 0):
            raise ValueError(
                f"{type(self).__name__}: replay_weight must be ≥ 0 and replay_batch_size positive, "
                f"got {replay_weight} and {replay_batch_size}."
            )
        terms = {
            "ce": CrossEntropy(weighting=weighting),
            "replay_ce": ReplayCrossEntropy(replay_weight, weighting=weighting),
        }
        super().__init__(
            *args,
            terms=terms,
            buffer_size=buffer_size,
            replay_batch_size=replay_batch_size,
            class_balanced=class_balanced,
            buffer_seed=buffer_seed,
            budget_per_class=budget_per_class,
            memory_size=memory_size,
            **kwargs,
        )
        self.replay_weight = float(replay_weight)
        self.weighting = weighting

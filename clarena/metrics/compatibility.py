"""Compatibility metrics as `torchmetrics.Metric`s: summed count states, correct under DDP.

Each class keeps the counts of `clarena.metrics.functional.compatibility` as states declared with
`dist_reduce_fx="sum"`, so `compute()` pools every batch on every process before dividing: the value
is the rate over the whole test set, never a mean of per-batch rates. The formulas (NFR, PFR, NFI,
BTC, BEC, the identity $\\mathrm{NFR} = \\mathrm{acc}_1 (1 - \\mathrm{BTC})$ and the note on
BackwardCompatibilityML's BEC denominator) are in that module's docstring.

`update(old_preds, new_preds, targets)` takes the predicted labels of the old model $h_1$ and of
the new model $h_2$ and the true labels, 1-D integer tensors of one batch.

Example:
    >>> import torch
    >>> btc = BackwardTrustCompatibility()
    >>> btc.update(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([0, 1]))
    >>> btc.update(torch.tensor([2]), torch.tensor([2]), torch.tensor([2]))
    >>> round(float(btc.compute()), 4)  # 2 both right / 3 old right
    0.6667
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from clarena.metrics.functional.compatibility import (
    COUNT_NAMES,
    compatibility_counts,
    compatibility_scores,
    negative_flips_per_class,
)


class CompatibilityCounts(Metric):
    """All seven compatibility counts and the five scores of an old/new model pair.

    `compute()` returns a dict with the int64 counts `total`, `old_correct`, `new_correct`,
    `both_correct`, `both_wrong`, `negative_flips`, `positive_flips` and the float64 scores
    `nfr`, `pfr`, `nfi`, `btc`, `bec` (NaN where undefined).
    """

    is_differentiable = False
    higher_is_better: bool | None = None
    full_state_update = False

    total: Tensor
    old_correct: Tensor
    new_correct: Tensor
    both_correct: Tensor
    both_wrong: Tensor
    negative_flips: Tensor
    positive_flips: Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in COUNT_NAMES:
            self.add_state(name, default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, old_preds: Tensor, new_preds: Tensor, targets: Tensor) -> None:
        """Add the counts of one batch."""
        counts = compatibility_counts(old_preds, new_preds, targets)
        for name in COUNT_NAMES:
            setattr(self, name, getattr(self, name) + counts[name])

    def counts(self) -> dict[str, Tensor]:
        """The pooled counts (after synchronisation when called from `compute`)."""
        return {name: getattr(self, name) for name in COUNT_NAMES}

    def compute(self) -> dict[str, Tensor]:
        counts = self.counts()
        return {**counts, **compatibility_scores(counts)}


class _CompatibilityScore(CompatibilityCounts):
    """One score of `CompatibilityCounts`; subclasses name it in `_score`."""

    _score: str = ""

    def compute(self) -> Tensor:  # type: ignore[override]
        return compatibility_scores(self.counts())[self._score]


class NegativeFlipRate(_CompatibilityScore):
    """NFR: the share of points the old model got right and the new model gets wrong."""

    higher_is_better = False
    _score = "nfr"


class PositiveFlipRate(_CompatibilityScore):
    """PFR: the share of points the old model got wrong and the new model gets right."""

    higher_is_better = True
    _score = "pfr"


class NegativeFlipImpact(_CompatibilityScore):
    """NFI: the share of the new model's errors that the old model got right (negative flips)."""

    higher_is_better = False
    _score = "nfi"


class BackwardTrustCompatibility(_CompatibilityScore):
    """BTC: #(both right) / #(old model right)."""

    higher_is_better = True
    _score = "btc"


class BackwardErrorCompatibility(_CompatibilityScore):
    """BEC: #(both wrong) / #(new model wrong) (BackwardCompatibilityML's code divides by the old
    model's errors; clarena follows the published definition)."""

    higher_is_better = True
    _score = "bec"


class IncompatiblePointsPerClass(Metric):
    """Negative flips counted per true class: an int64 `(num_classes,)` vector, summed over batches
    and processes.

    Args:
        num_classes: The number of classes (the labels lie in `0..num_classes-1`).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    per_class: Tensor

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.add_state(
            "per_class", default=torch.zeros(num_classes, dtype=torch.int64), dist_reduce_fx="sum"
        )

    def update(self, old_preds: Tensor, new_preds: Tensor, targets: Tensor) -> None:
        """Add the negative flips of one batch, by true class."""
        self.per_class = self.per_class + negative_flips_per_class(
            old_preds, new_preds, targets, self.num_classes
        )

    def compute(self) -> Tensor:
        return self.per_class

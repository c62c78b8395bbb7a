r"""Compatibility between an old model $h_1$ and its update $h_2$, from their predicted labels.

The math of every compatibility number in clarena lives here, once; the stateful
`torchmetrics.Metric` classes in `clarena.metrics.compatibility` and the run accumulator
`clarena.metrics.CLResults` only add up the counts this module computes.

For $N$ test points with true labels $y_i$ and predictions $\hat y^{(1)}_i$ (old model) and
$\hat y^{(2)}_i$ (new model), write $c^{(1)}_i = 1[\hat y^{(1)}_i = y_i]$ and likewise $c^{(2)}_i$.
The counts are

- `old_correct` $= \sum_i c^{(1)}_i$, `new_correct` $= \sum_i c^{(2)}_i$,
- `both_correct` $= \sum_i c^{(1)}_i c^{(2)}_i$, `both_wrong` $= \sum_i (1-c^{(1)}_i)(1-c^{(2)}_i)$,
- `negative_flips` $= \sum_i c^{(1)}_i (1-c^{(2)}_i)$ (right before, wrong after: a *regress*),
- `positive_flips` $= \sum_i (1-c^{(1)}_i) c^{(2)}_i$ (wrong before, right after: a *progress*),

and the scores (Bansal et al., 2019, "Updates in Human-AI Teams"; Yan et al., 2021,
"Positive-Congruent Training")

$$\mathrm{NFR} = \frac{\#\text{negative flips}}{N},\qquad
\mathrm{PFR} = \frac{\#\text{positive flips}}{N},\qquad
\mathrm{NFI} = \frac{\#\text{negative flips}}{\#(h_2\ \text{wrong})},$$
$$\mathrm{BTC} = \frac{\#(\text{both right})}{\#(h_1\ \text{right})},\qquad
\mathrm{BEC} = \frac{\#(\text{both wrong})}{\#(h_2\ \text{wrong})}.$$

BTC (backward trust compatibility) is the share of the points the old model got right that the new
model still gets right; BEC (backward error compatibility) is the share of the new model's errors
that the old model made as well, and NFI (negative flip impact) the share that are new, so
$\mathrm{NFI} = 1 - \mathrm{BEC}$ when $h_2$ errs at all. Since
$\#\text{negative flips} = \#(h_1\ \text{right}) - \#(\text{both right})$, with
$\mathrm{acc}_1 = \#(h_1\ \text{right})/N$:

$$\mathrm{NFR} = \mathrm{acc}_1 \cdot (1 - \mathrm{BTC}).$$

**A note on BEC.** The definition above (Bansal et al., 2019) divides by the *new* model's errors.
The code of Microsoft's BackwardCompatibilityML divides the both-wrong count by the *old* model's
errors instead; the two agree only when both models make the same number of errors. clarena reports
the published definition.

A ratio whose denominator is zero (BTC when the old model is never right, BEC and NFI when the new
model is never wrong, anything on an empty set) is undefined and returned as NaN.

All counts are pooled over every point seen, never averaged per batch: the rate of a whole test set
is the ratio of its summed counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from clarena.core import compatibility as _core
from clarena.core.compatibility import COUNT_NAMES as COUNT_NAMES  # the names, defined once
from clarena.core.compatibility import SCORE_NAMES as SCORE_NAMES


def _check(old_preds: Tensor, new_preds: Tensor, targets: Tensor) -> None:
    for name, value in (("old_preds", old_preds), ("new_preds", new_preds), ("targets", targets)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of labels, got {type(value).__name__}")
        if value.dim() != 1:
            raise ValueError(
                f"{name} must be a 1-D tensor of class labels, got shape {tuple(value.shape)}; "
                "pass argmax(logits, dim=1), not the logits"
            )
        if value.is_floating_point() or value.is_complex():
            raise ValueError(f"{name} must hold integer class labels, got dtype {value.dtype}")
    if not old_preds.shape == new_preds.shape == targets.shape:
        raise ValueError(
            "old_preds, new_preds and targets must have the same length, got "
            f"{old_preds.numel()}, {new_preds.numel()} and {targets.numel()}"
        )


def compatibility_counts(
    old_preds: Tensor, new_preds: Tensor, targets: Tensor
) -> dict[str, Tensor]:
    """The seven counts (see the module docstring) of one set of predictions, as int64 scalars.

    Args:
        old_preds: `(N,)` labels predicted by the old model $h_1$.
        new_preds: `(N,)` labels predicted by the new model $h_2$.
        targets: `(N,)` true labels.

    Returns:
        A dict keyed by `COUNT_NAMES`, each an int64 0-dim tensor on the inputs' device.

    Example:
        >>> import torch
        >>> c = compatibility_counts(torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2]),
        ...                          torch.tensor([0, 1, 1]))
        >>> {k: int(v) for k, v in c.items()}  # doctest: +NORMALIZE_WHITESPACE
        {'total': 3, 'old_correct': 2, 'new_correct': 1, 'both_correct': 1, 'both_wrong': 1,
         'negative_flips': 1, 'positive_flips': 0}
    """
    _check(old_preds, new_preds, targets)
    old_right = old_preds == targets
    new_right = new_preds == targets
    both_correct = (old_right & new_right).sum()
    both_wrong = (~old_right & ~new_right).sum()
    negative = (old_right & ~new_right).sum()
    positive = (~old_right & new_right).sum()
    total = torch.tensor(targets.numel(), dtype=torch.int64, device=targets.device)
    return {
        "total": total,
        "old_correct": old_right.sum(),
        "new_correct": new_right.sum(),
        "both_correct": both_correct,
        "both_wrong": both_wrong,
        "negative_flips": negative,
        "positive_flips": positive,
    }


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    numerator = numerator.to(torch.float64)
    denominator = denominator.to(torch.float64)
    nan = torch.full_like(numerator, float("nan"))
    return torch.where(denominator > 0, numerator / denominator.clamp(min=1), nan)


def compatibility_scores(counts: dict[str, Tensor]) -> dict[str, Tensor]:
    """NFR, PFR, NFI, BTC and BEC (float64 tensors) from pooled counts: the formulas of
    `clarena.core.compatibility.compatibility_scores`, divided as tensors.

    Args:
        counts: The counts of `compatibility_counts`, possibly summed over batches or processes
            (only `total`, `old_correct`, `both_correct`, `both_wrong`, `new_correct`,
            `negative_flips` and `positive_flips` are read).

    Returns:
        `{"nfr": ..., "pfr": ..., "nfi": ..., "btc": ..., "bec": ...}`; NaN where the denominator
        is zero.
    """
    tensors = {name: torch.as_tensor(counts[name]) for name in COUNT_NAMES}
    return _core.compatibility_scores(tensors, ratio=_ratio)


def negative_flip_rate(old_preds: Tensor, new_preds: Tensor, targets: Tensor) -> Tensor:
    r"""NFR $= \#\{i: h_1 \text{ right}, h_2 \text{ wrong}\} / N$ (NaN for $N = 0$)."""
    return compatibility_scores(compatibility_counts(old_preds, new_preds, targets))["nfr"]


def positive_flip_rate(old_preds: Tensor, new_preds: Tensor, targets: Tensor) -> Tensor:
    r"""PFR $= \#\{i: h_1 \text{ wrong}, h_2 \text{ right}\} / N$ (NaN for $N = 0$)."""
    return compatibility_scores(compatibility_counts(old_preds, new_preds, targets))["pfr"]


def negative_flip_impact(old_preds: Tensor, new_preds: Tensor, targets: Tensor) -> Tensor:
    r"""NFI $= \#\{i: h_1 \text{ right}, h_2 \text{ wrong}\} / \#(h_2 \text{ wrong})$ (NaN when
    $h_2$ is never wrong)."""
    return compatibility_scores(compatibility_counts(old_preds, new_preds, targets))["nfi"]


def backward_trust_compatibility(old_preds: Tensor, new_preds: Tensor, targets: Tensor) -> Tensor:
    r"""BTC $= \#(\text{both right}) / \#(h_1 \text{ right})$ (NaN when $h_1$ is never right)."""
    return compatibility_scores(compatibility_counts(old_preds, new_preds, targets))["btc"]


def backward_error_compatibility(old_preds: Tensor, new_preds: Tensor, targets: Tensor) -> Tensor:
    r"""BEC $= \#(\text{both wrong}) / \#(h_2 \text{ wrong})$ (NaN when $h_2$ is never wrong).

    BackwardCompatibilityML's code divides by $\#(h_1 \text{ wrong})$ instead; see the module
    docstring.
    """
    return compatibility_scores(compatibility_counts(old_preds, new_preds, targets))["bec"]


def negative_flips_per_class(
    old_preds: Tensor, new_preds: Tensor, targets: Tensor, num_classes: int
) -> Tensor:
    """The incompatible points per true class: negative flips counted by their true label.

    Args:
        old_preds: `(N,)` labels predicted by the old model.
        new_preds: `(N,)` labels predicted by the new model.
        targets: `(N,)` true labels in `0..num_classes-1`.
        num_classes: The length of the result.

    Returns:
        An int64 `(num_classes,)` tensor whose entry `k` counts the points of class `k` that the
        old model classified correctly and the new one does not.
    """
    _check(old_preds, new_preds, targets)
    if num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(
            f"targets must lie in 0..{num_classes - 1}, got labels from {int(targets.min())} "
            f"to {int(targets.max())}; raise num_classes"
        )
    negative = ((old_preds == targets) & (new_preds != targets)).to(torch.int64)
    counts = torch.zeros(num_classes, dtype=torch.int64, device=targets.device)
    return counts.scatter_add_(0, targets.long(), negative)


def pooled_compatibility(
    test_sets: Iterable[tuple[Tensor, Tensor, Tensor]], num_classes: int
) -> dict[str, Any]:
    """Everything about one old/new model pair, pooled over several test sets, as plain numbers.

    Args:
        test_sets: `(old_preds, new_preds, targets)` per test set (e.g. per earlier task).
        num_classes: The length of `negative_flips_per_class`.

    Returns:
        The counts of `compatibility_counts` summed over the test sets; `old_accuracy` and
        `new_accuracy` (fractions); `nfr`, `pfr`, `nfi`, `btc`, `bec`; `error_overlap`, a dict with
        `progress` (positive flips: old errors the new model fixed), `common` (both wrong) and
        `regress` (negative flips: new errors); `negative_flips_per_class`, a list.
    """
    counts = {name: torch.tensor(0, dtype=torch.int64) for name in COUNT_NAMES}
    per_class = torch.zeros(num_classes, dtype=torch.int64)
    for old_preds, new_preds, targets in test_sets:
        for name, value in compatibility_counts(old_preds, new_preds, targets).items():
            counts[name] = counts[name] + value.cpu()
        per_class += negative_flips_per_class(old_preds, new_preds, targets, num_classes).cpu()
    out: dict[str, Any] = {name: int(value) for name, value in counts.items()}
    total = out["total"]
    out["old_accuracy"] = out["old_correct"] / total if total else float("nan")
    out["new_accuracy"] = out["new_correct"] / total if total else float("nan")
    out.update({name: float(value) for name, value in compatibility_scores(counts).items()})
    out["error_overlap"] = {
        "progress": out["positive_flips"],
        "common": out["both_wrong"],
        "regress": out["negative_flips"],
    }
    out["negative_flips_per_class"] = per_class.tolist()
    return out

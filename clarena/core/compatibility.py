r"""The compatibility counts and scores of an old model $h_1$ and its update $h_2$, defined once.

Both wings use these names and formulas: `clarena.metrics.functional.compatibility` (torch
tensors, pooled over batches and processes) and `clarena.tensorflow.tf_helpers` (numpy). With
$c^{(j)}_i = 1[h_j \text{ is right on sample } i]$ over $N$ samples, the counts (`COUNT_NAMES`) are

- `total` $= N$, `old_correct` $= \sum_i c^{(1)}_i$, `new_correct` $= \sum_i c^{(2)}_i$,
- `both_correct` $= \sum_i c^{(1)}_i c^{(2)}_i$, `both_wrong` $= \sum_i (1-c^{(1)}_i)(1-c^{(2)}_i)$,
- `negative_flips` $= \sum_i c^{(1)}_i (1-c^{(2)}_i)$, `positive_flips` $= \sum_i (1-c^{(1)}_i)
  c^{(2)}_i$,

and the scores (`SCORE_NAMES`; Bansal et al., AAAI 2019; Srivastava et al., KDD 2020; Yan et al.,
CVPR 2021)

$$\mathrm{NFR} = \frac{\text{negative\_flips}}{N},\quad
\mathrm{PFR} = \frac{\text{positive\_flips}}{N},\quad
\mathrm{NFI} = \frac{\text{negative\_flips}}{N - \text{new\_correct}},\quad
\mathrm{BTC} = \frac{\text{both\_correct}}{\text{old\_correct}},\quad
\mathrm{BEC} = \frac{\text{both\_wrong}}{N - \text{new\_correct}}.$$

NFI, the negative flip impact, is the share of $h_2$'s errors that are new (negative flips), so
$\mathrm{NFI} = 1 - \mathrm{BEC}$ whenever $h_2$ errs at all. BEC divides by $h_2$'s errors, as
the paper defines it (BackwardCompatibilityML's code divides by $h_1$'s errors). A ratio whose
denominator is zero is NaN. Only the standard library and numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

COUNT_NAMES: tuple[str, ...] = (
    "total",
    "old_correct",
    "new_correct",
    "both_correct",
    "both_wrong",
    "negative_flips",
    "positive_flips",
)
"""The names of the counts, in a fixed order."""

SCORE_NAMES: tuple[str, ...] = ("nfr", "pfr", "nfi", "btc", "bec")
"""The names of the scores, in a fixed order."""


def float_ratio(numerator: Any, denominator: Any) -> float:
    """`numerator / denominator` as a Python float; NaN when the denominator is 0."""
    return float(numerator) / float(denominator) if denominator else math.nan


def counts_from_correct(old_correct: Any, new_correct: Any) -> dict[str, int]:
    """The counts (`COUNT_NAMES`) from per-sample correctness of the two models.

    Args:
        old_correct: booleans, one per sample: whether $h_1$ is right (any array-like).
        new_correct: the same for $h_2$.

    Raises:
        ValueError: when the two hold different numbers of samples.
    """
    old = np.asarray(old_correct, dtype=bool).reshape(-1)
    new = np.asarray(new_correct, dtype=bool).reshape(-1)
    if old.shape != new.shape:
        raise ValueError(
            f"h1 and h2 were scored on {old.size} and {new.size} samples; pass the same samples"
        )
    return {
        "total": int(old.size),
        "old_correct": int(old.sum()),
        "new_correct": int(new.sum()),
        "both_correct": int((old & new).sum()),
        "both_wrong": int((~old & ~new).sum()),
        "negative_flips": int((old & ~new).sum()),
        "positive_flips": int((~old & new).sum()),
    }


def compatibility_scores(
    counts: Mapping[str, Any], ratio: Callable[[Any, Any], Any] = float_ratio
) -> dict[str, Any]:
    """NFR, PFR, NFI, BTC and BEC (`SCORE_NAMES`, in that order) from counts.

    Args:
        counts: the counts by `COUNT_NAMES` (ints, numpy or torch scalars; possibly summed over
            batches or processes). `total` and `new_correct` must support subtraction.
        ratio: how to divide, `ratio(numerator, denominator)`, NaN for a zero denominator
            (`float_ratio` for Python numbers; the torch metrics pass a tensor division).

    Returns:
        `{"nfr": ..., "pfr": ..., "nfi": ..., "btc": ..., "bec": ...}`.
    """
    total = counts["total"]
    return {
        "nfr": ratio(counts["negative_flips"], total),
        "pfr": ratio(counts["positive_flips"], total),
        "nfi": ratio(counts["negative_flips"], total - counts["new_correct"]),
        "btc": ratio(counts["both_correct"], counts["old_correct"]),
        "bec": ratio(counts["both_wrong"], total - counts["new_correct"]),
    }

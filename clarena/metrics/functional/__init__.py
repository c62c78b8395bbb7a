"""Functional (stateless) metrics: the math, written once.

- `clarena.metrics.functional.compatibility`: flip counts, NFR, PFR, NFI, BTC, BEC, incompatible
  points per class (torch tensors).
- `clarena.metrics.functional.cl`: average accuracy, BWT, forgetting and FWT over an accuracy
  matrix.
- `clarena.metrics.functional.release`: the statistics of a release decision: Wilson intervals,
  the exact McNemar test, NFR per class and per group, the gates of `clarena compare` (numpy
  only).

The names below are imported on first use, so that `release` (and `clarena compare` on
prediction files) runs without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clarena.core.compatibility import COUNT_NAMES, SCORE_NAMES
from clarena.core.lazy import lazy_exports

if TYPE_CHECKING:  # what `__getattr__` imports on first use, for type checkers
    from clarena.metrics.functional.cl import (
        average_accuracy,
        average_accuracy_per_task,
        backward_transfer,
        forgetting,
        forward_transfer,
    )
    from clarena.metrics.functional.compatibility import (
        backward_error_compatibility,
        backward_trust_compatibility,
        compatibility_counts,
        compatibility_scores,
        negative_flip_impact,
        negative_flip_rate,
        negative_flips_per_class,
        pooled_compatibility,
        positive_flip_rate,
    )

_FROM = {
    "cl": (
        "average_accuracy",
        "average_accuracy_per_task",
        "backward_transfer",
        "forgetting",
        "forward_transfer",
    ),
    "compatibility": (
        "backward_error_compatibility",
        "backward_trust_compatibility",
        "compatibility_counts",
        "compatibility_scores",
        "negative_flip_impact",
        "negative_flip_rate",
        "negative_flips_per_class",
        "pooled_compatibility",
        "positive_flip_rate",
    ),
}

__all__ = [  # the submodules are listed so that pdoc documents them
    "COUNT_NAMES",
    "SCORE_NAMES",
    "average_accuracy",
    "average_accuracy_per_task",
    "backward_error_compatibility",
    "backward_transfer",
    "backward_trust_compatibility",
    "cl",
    "compatibility",
    "compatibility_counts",
    "compatibility_scores",
    "forgetting",
    "forward_transfer",
    "negative_flip_impact",
    "negative_flip_rate",
    "negative_flips_per_class",
    "pooled_compatibility",
    "positive_flip_rate",
    "release",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {name: module for module, names in _FROM.items() for name in names},
    ("cl", "compatibility", "release"),
)

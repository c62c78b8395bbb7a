"""Functional (stateless) metrics: the math, written once.

- `clarena.metrics.functional.compatibility`: flip counts, NFR, PFR, BTC, BEC, incompatible points
  per class.
- `clarena.metrics.functional.cl`: average accuracy, BWT, forgetting and FWT over an accuracy
  matrix.
"""

from clarena.metrics.functional.cl import (
    average_accuracy,
    average_accuracy_per_task,
    backward_transfer,
    forgetting,
    forward_transfer,
)
from clarena.metrics.functional.compatibility import (
    COUNT_NAMES,
    SCORE_NAMES,
    backward_error_compatibility,
    backward_trust_compatibility,
    compatibility_counts,
    compatibility_scores,
    negative_flip_rate,
    negative_flips_per_class,
    pooled_compatibility,
    positive_flip_rate,
)

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
    "negative_flip_rate",
    "negative_flips_per_class",
    "pooled_compatibility",
    "positive_flip_rate",
]

r"""Continual-learning summary metrics over an accuracy matrix: pure functions.

The accuracy matrix $a \in [0, 1]^{T \times T}$ holds in $a_{t,j}$ the test accuracy on task $j$
after training task $t$ (tasks numbered from 1; row $t$, column $j$; the entry sits at index
`[t - 1, j - 1]`). clarena tests after task $t$ on the tasks $j \le t$, so the matrix is lower
triangular; entries that were not measured are NaN and never read unless a formula needs them.
Accuracies are fractions in $[0, 1]$.

The functions take anything `numpy.asarray` accepts (a list of lists, a NumPy array, a CPU
tensor) and return Python floats; a formula with no terms (one task for BWT) gives NaN.

References:
    D. Lopez-Paz and M. Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017
    (average accuracy, BWT, FWT). A. Chaudhry, P. K. Dokania, T. Ajanthan and P. H. S. Torr,
    "Riemannian Walk for Incremental Learning", ECCV 2018 (forgetting).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _matrix(acc: Any) -> np.ndarray:
    matrix = np.asarray(acc, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < matrix.shape[0]:
        raise ValueError(
            "the accuracy matrix must be 2-D with one row per trained task and at least as many "
            f"columns as rows (a[t, j] for j <= t), got shape {matrix.shape}"
        )
    return matrix


def _entry(matrix: np.ndarray, t: int, j: int) -> float:
    value = float(matrix[t - 1, j - 1])
    if not np.isfinite(value):
        raise ValueError(
            f"accuracy a[{t}, {j}] (test on task {j} after training task {t}) is missing; "
            "evaluate every task j <= t after each task t"
        )
    return value


def average_accuracy(acc: Any) -> float:
    r"""Average accuracy after the last task (Lopez-Paz & Ranzato, 2017).

    $$\mathrm{ACC} = \frac{1}{T} \sum_{j=1}^{T} a_{T,j}$$

    Args:
        acc: The accuracy matrix (`T` rows).

    Returns:
        The mean of the last row over the tasks seen so far.

    Example:
        >>> average_accuracy([[0.9, float("nan")], [0.7, 0.8]])
        0.75
    """
    matrix = _matrix(acc)
    last = matrix.shape[0]
    return float(np.mean([_entry(matrix, last, j) for j in range(1, last + 1)]))


def average_accuracy_per_task(acc: Any) -> list[float]:
    r"""The average accuracy after each task: $\bar a_t = \frac{1}{t} \sum_{j=1}^{t} a_{t,j}$.

    Args:
        acc: The accuracy matrix (`T` rows).

    Returns:
        `[a_1, ..., a_T]`; a row with a missing entry gives NaN for that task.
    """
    matrix = _matrix(acc)
    rows = []
    for t in range(1, matrix.shape[0] + 1):
        values = matrix[t - 1, :t]
        rows.append(float(np.mean(values)) if np.all(np.isfinite(values)) else float("nan"))
    return rows


def backward_transfer(acc: Any) -> float:
    r"""Backward transfer (Lopez-Paz & Ranzato, 2017): how later tasks changed earlier ones.

    $$\mathrm{BWT} = \frac{1}{T-1} \sum_{j=1}^{T-1} \left(a_{T,j} - a_{j,j}\right)$$

    Negative values mean forgetting. NaN for $T = 1$.

    Example:
        >>> round(backward_transfer([[0.9, float("nan")], [0.7, 0.8]]), 10)
        -0.2
    """
    matrix = _matrix(acc)
    last = matrix.shape[0]
    if last < 2:
        return float("nan")
    terms = [_entry(matrix, last, j) - _entry(matrix, j, j) for j in range(1, last)]
    return float(np.mean(terms))


def forgetting(acc: Any) -> float:
    r"""Average forgetting (Chaudhry et al., 2018): best accuracy ever minus the final accuracy.

    $$f_j = \max_{l \in \{j, \dots, T-1\}} a_{l,j} - a_{T,j}, \qquad
    F = \frac{1}{T-1} \sum_{j=1}^{T-1} f_j$$

    (The maximum runs over the evaluations of task $j$ before the last task; entries $l < j$,
    when present, are accuracies before task $j$ was learned and are not read.) NaN for $T = 1$.

    Example:
        >>> round(forgetting([[0.9, float("nan")], [0.7, 0.8]]), 10)
        0.2
    """
    matrix = _matrix(acc)
    last = matrix.shape[0]
    if last < 2:
        return float("nan")
    terms = []
    for j in range(1, last):
        best = max(_entry(matrix, t, j) for t in range(j, last))
        terms.append(best - _entry(matrix, last, j))
    return float(np.mean(terms))


def forward_transfer(acc: Any, reference: Sequence[float] | Any, zero_shot: bool = False) -> float:
    r"""Forward transfer against a reference accuracy per task.

    With $b_t$ the accuracy of a reference model on task $t$, the default (`zero_shot=False`) is
    $$\mathrm{FWT} = \frac{1}{T-1} \sum_{t=2}^{T} \left(a_{t,t} - b_t\right),$$
    where $b_t$ comes from a model trained on task $t$ alone (independent learning) or from a
    randomly initialised one: what the earlier tasks contributed to learning task $t$. This form
    needs only the lower-triangular matrix that clarena measures.

    With `zero_shot=True` it is Lopez-Paz & Ranzato's (2017) original
    $$\mathrm{FWT} = \frac{1}{T-1} \sum_{t=2}^{T} \left(a_{t-1,t} - b_t\right),$$
    with $b_t$ the accuracy of a randomly initialised model; it reads the entries above the
    diagonal (accuracy on task $t$ before training on it), which must then have been measured.

    Args:
        acc: The accuracy matrix (`T` rows).
        reference: `[b_1, ..., b_T]` (at least `T` values; `b_1` is not used).
        zero_shot: Use the original zero-shot form.

    Returns:
        FWT; NaN for $T = 1$.

    Example:
        >>> round(forward_transfer([[0.9, float("nan")], [0.7, 0.8]], [0.85, 0.75]), 10)
        0.05
    """
    matrix = _matrix(acc)
    last = matrix.shape[0]
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    if ref.shape[0] < last:
        raise ValueError(
            f"the reference needs one accuracy per task (at least {last}), got {ref.shape[0]}"
        )
    if last < 2:
        return float("nan")
    if not np.all(np.isfinite(ref[1:last])):
        raise ValueError("the reference accuracies of tasks 2..T must be finite numbers")
    row_offset = 1 if zero_shot else 0
    terms = [_entry(matrix, t - row_offset, t) - ref[t - 1] for t in range(2, last + 1)]
    return float(np.mean(terms))

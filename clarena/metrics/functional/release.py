r"""The statistics of a release decision: may the update $h_2$ of a deployed model $h_1$ ship?

`compare_predictions` scores two models' predictions on the same $N$ labelled samples (the
counts and NFR, PFR, NFI, BTC, BEC of `clarena.core.compatibility`), tests whether the update is
worse than chance would explain (`mcnemar_exact`), and breaks the negative flip rate down by true
class and by group, each with a Wilson interval (`wilson_interval`). `evaluate_gates` turns the
result into pass/fail verdicts against the limits a team sets. `clarena compare` prints, writes
and gates these numbers.

**Wilson score interval** (Wilson, 1927; Newcombe, 1998) for $k$ successes in $n$ trials, with
$\hat p = k/n$ and $z = \Phi^{-1}(1 - (1-\gamma)/2)$ for the confidence level $\gamma$
($z \approx 1.96$ at 95 %):

$$\frac{k + z^2/2}{n + z^2} \pm \frac{z}{n + z^2}\sqrt{\frac{k(n-k)}{n} + \frac{z^2}{4}},$$

with the lower end 0 when $k = 0$ and the upper end 1 when $k = n$. Unlike the normal
approximation it stays inside $[0, 1]$ and is honest for rare events, which flips are.

**Exact McNemar test.** Of the samples on which exactly one model is right, $b$ are negative
flips ($h_1$ right, $h_2$ wrong) and $c$ positive flips. If the two models were equally accurate,
each of these $n = b + c$ discordant samples would fall on either side with probability 1/2, so
$b \sim \mathrm{Binomial}(n, 1/2)$; the two-sided p-value is

$$p = \min\Bigl(1,\ 2 \sum_{i=0}^{\min(b, c)} \binom{n}{i} 2^{-n}\Bigr),$$

and $p = 1$ when $n = 0$. The samples both models get right or both get wrong say nothing about
which is better and do not enter.

Only numpy and the standard library: `clarena compare` on prediction files imports no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from clarena.core.compatibility import compatibility_scores, counts_from_correct


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (formula in the module docstring).

    Args:
        successes: $k$, between 0 and `trials`.
        trials: $n \\ge 0$; with $n = 0$ the proportion is undefined and both ends are NaN.
        confidence: $\\gamma$ in (0, 1).

    Returns:
        `(low, high)`, fractions in [0, 1].

    Example:
        >>> [round(v, 4) for v in wilson_interval(2, 10)]
        [0.0567, 0.5098]
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    center = (successes + z * z / 2) / (trials + z * z)
    half = z / (trials + z * z) * math.sqrt(successes * (trials - successes) / trials + z * z / 4)
    low = 0.0 if successes == 0 else center - half
    high = 1.0 if successes == trials else center + half
    return low, high


def mcnemar_exact(negative_flips: int, positive_flips: int) -> float:
    """The two-sided exact McNemar p-value over the discordant pairs (module docstring).

    Up to `EXACT_UP_TO` discordant samples the binomial tail is summed in integers and divided
    once (correctly rounded); beyond, its terms are summed as ratios of the largest one, whose
    logarithm comes from `math.lgamma` (relative error below $10^{-9}$ up to a million samples).

    Example:
        >>> mcnemar_exact(9, 2)  # 2 * P(Bin(11, 1/2) <= 2) = 2 * 67 / 2**11
        0.0654296875
    """
    b, c = int(negative_flips), int(positive_flips)
    if b < 0 or c < 0:
        raise ValueError(f"flip counts must be >= 0, got {b} and {c}")
    n, k = b + c, min(b, c)
    if n == 0 or b == c:
        return 1.0
    if n <= EXACT_UP_TO:
        term, tail = 1, 1  # C(n, 0)
        for i in range(k):
            term = term * (n - i) // (i + 1)
            tail += term
        return min(1.0, tail / 2 ** (n - 1))
    # the terms C(n, i) for i = k, k-1, ..., 0 relative to C(n, k), which is the largest
    relative, ratio = 1.0, 1.0
    for i in range(k, 0, -1):
        ratio *= i / (n - i + 1)
        if ratio < 1e-18:
            break
        relative += ratio
    log_top = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return min(1.0, math.exp(log_top - (n - 1) * math.log(2)) * relative)


EXACT_UP_TO = 20_000
"""Discordant samples up to which `mcnemar_exact` sums the binomial tail in integers."""


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python int or str it holds (JSON writes these)."""
    return value.item() if isinstance(value, np.generic) else value


def nfr_by_slice(
    keys: np.ndarray, old_correct: np.ndarray, new_correct: np.ndarray, confidence: float = 0.95
) -> list[dict[str, Any]]:
    """NFR within each distinct value of `keys` (a class, a group), with its Wilson interval.

    Returns:
        One dict per key, sorted by key: `key`, `n` (samples), `negative_flips`, `nfr`,
        `ci_low`, `ci_high`.
    """
    values, inverse = np.unique(keys, return_inverse=True)
    flips = np.bincount(inverse, weights=old_correct & ~new_correct, minlength=len(values))
    sizes = np.bincount(inverse, minlength=len(values))
    rows = []
    for key, n, k in zip(values, sizes.tolist(), flips.astype(np.int64).tolist()):
        low, high = wilson_interval(k, n, confidence)
        row = {"key": _plain(key), "n": n, "negative_flips": k, "nfr": k / n}
        rows.append({**row, "ci_low": low, "ci_high": high})
    return rows


def negative_flip_matrix(
    labels: np.ndarray, new_predictions: np.ndarray, negative: np.ndarray
) -> dict[str, Any]:
    """The old → new flip matrix: negative flips counted by (old prediction, new prediction).

    For a negative flip the old prediction is the true class, so row $r$ says what the update
    now predicts for the samples of class $r$ that $h_1$ classified correctly.

    Returns:
        `{"classes": [...], "counts": [[...], ...]}` over every value seen in `labels` or
        `new_predictions` (sorted); `counts[r][c]` is an int.
    """
    classes = np.unique(np.concatenate([labels, new_predictions]))
    rows = np.searchsorted(classes, labels[negative])
    cols = np.searchsorted(classes, new_predictions[negative])
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, (rows, cols), 1)
    return {"classes": [_plain(c) for c in classes], "counts": counts.tolist()}


def compare_predictions(
    labels: Sequence[Any] | np.ndarray,
    old_predictions: Sequence[Any] | np.ndarray,
    new_predictions: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Everything a release decision reads, for one old/new pair on the same samples.

    Args:
        labels: `(N,)` true labels (integers or strings), one per sample.
        old_predictions: `(N,)` labels predicted by the deployed model $h_1$, in the same order.
        new_predictions: `(N,)` labels predicted by the update $h_2$.
        groups: `(N,)` slice of each sample (optional).
        confidence: of the Wilson intervals.

    Returns:
        `n`, `old_accuracy`, `new_accuracy`, the counts of `clarena.core.compatibility`,
        `nfr`, `pfr`, `nfi`, `btc`, `bec` (fractions; NaN where undefined), `mcnemar_p`,
        `per_class` (`class`, `n`, `nfr`, `ci_low`, `ci_high`, `negative_flips`), `per_group`
        (the same keyed by `group`; `None` without groups) and `flip_matrix`
        (`negative_flip_matrix`).

    Raises:
        ValueError: when the arrays are not 1-D of one length, or hold no sample.
    """
    y, old, new = (np.asarray(a).reshape(-1) for a in (labels, old_predictions, new_predictions))
    arrays = {"labels": y, "old predictions": old, "new predictions": new}
    if groups is not None:
        arrays["groups"] = np.asarray(groups).reshape(-1)
    lengths = {name: a.size for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        shown = ", ".join(f"{n} {name}" for name, n in lengths.items())
        raise ValueError(f"the inputs differ in length ({shown}); pass one row per sample")
    if y.size == 0:
        raise ValueError("there is no sample to compare; pass non-empty predictions")
    old_right, new_right = old == y, new == y
    counts = counts_from_correct(old_right, new_right)
    out: dict[str, Any] = {
        "n": counts["total"],
        "old_accuracy": counts["old_correct"] / counts["total"],
        "new_accuracy": counts["new_correct"] / counts["total"],
        **counts,
        **compatibility_scores(counts),
        "mcnemar_p": mcnemar_exact(counts["negative_flips"], counts["positive_flips"]),
    }
    out["per_class"] = [
        {"class": r.pop("key"), **r} for r in nfr_by_slice(y, old_right, new_right, confidence)
    ]
    out["per_group"] = None
    if groups is not None:
        rows = nfr_by_slice(arrays["groups"], old_right, new_right, confidence)
        out["per_group"] = [{"group": r.pop("key"), **r} for r in rows]
    out["flip_matrix"] = negative_flip_matrix(y, new, old_right & ~new_right)
    return out


GATE_NAMES: tuple[str, ...] = ("max_nfr", "max_class_nfr", "min_accuracy_gain", "alpha")
"""The gates, in the order they are checked and reported."""


def evaluate_gates(
    result: dict[str, Any],
    max_nfr: float | None = None,
    max_class_nfr: float | None = None,
    min_accuracy_gain: float | None = None,
    alpha: float | None = None,
) -> list[dict[str, Any]]:
    """The verdict of every gate that has a limit (`None` turns a gate off).

    - `max_nfr`: passes when NFR $\\le$ the limit (a fraction).
    - `max_class_nfr`: passes when every class's NFR $\\le$ the limit; the value is the largest
      per-class NFR and `class` names that class.
    - `min_accuracy_gain`: passes when $100 \\cdot (\\mathrm{acc}_2 - \\mathrm{acc}_1) \\ge$ the
      limit, in percentage points (a negative limit tolerates a drop).
    - `alpha`: passes unless the update is significantly worse: it fails when it has more
      negative than positive flips and the exact McNemar p-value is below the limit.

    Returns:
        `{"name", "limit", "value", "passed"}` per gate (plus `class` for `max_class_nfr`).
    """
    gates: list[dict[str, Any]] = []
    if max_nfr is not None:
        gates.append(_gate("max_nfr", max_nfr, result["nfr"], result["nfr"] <= max_nfr))
    if max_class_nfr is not None:
        worst = max(result["per_class"], key=lambda r: r["nfr"])
        gate = _gate("max_class_nfr", max_class_nfr, worst["nfr"], worst["nfr"] <= max_class_nfr)
        gates.append({**gate, "class": worst["class"]})
    if min_accuracy_gain is not None:
        gain = 100.0 * (result["new_accuracy"] - result["old_accuracy"])
        gates.append(_gate("min_accuracy_gain", min_accuracy_gain, gain, gain >= min_accuracy_gain))
    if alpha is not None:
        worse = result["negative_flips"] > result["positive_flips"]
        p = result["mcnemar_p"]
        gates.append(_gate("alpha", alpha, p, not (worse and p < alpha)))
    return gates


def _gate(name: str, limit: float, value: float, passed: bool) -> dict[str, Any]:
    return {"name": name, "limit": float(limit), "value": float(value), "passed": bool(passed)}

"""Seeded, class-stratified partitions of a set of samples (validation hold-out, data chunks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_parts(
    classes: np.ndarray, fractions: Sequence[float], seed: int, stream: int = 0
) -> list[np.ndarray]:
    """Cut sample positions into disjoint parts that cover them and keep the class balance.

    Within every class the $n_c$ samples are shuffled by a generator seeded with
    `(seed, stream)` and cut at $\\mathrm{rint}(n_c \\sum_{s \\le i} f_s)$, so part $i$ holds
    about $f_i n_c$ samples of every class $c$.

    Args:
        classes: the class of every sample.
        fractions: the share of each part (non-negative, summing to 1).
        seed: the seed of the shuffle.
        stream: separates independent uses of one seed (hold-out vs chunks).

    Returns:
        One sorted array of positions per part.
    """
    bounds = np.concatenate([[0.0], np.cumsum(fractions)])
    bounds[-1] = 1.0
    rng = np.random.default_rng([seed, stream])
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(classes):
        members = rng.permutation(np.flatnonzero(classes == c))
        cuts = np.rint(bounds * len(members)).astype(int)
        for i in range(len(fractions)):
            parts[i].append(members[cuts[i] : cuts[i + 1]])
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, dtype=np.int64) for p in parts]

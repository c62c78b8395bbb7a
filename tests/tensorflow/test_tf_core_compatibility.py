"""The Keras side scores compatibility with the ground floor's counts and formulas."""

from __future__ import annotations

from clarena.core import compatibility
from clarena.tensorflow import tf_helpers


def test_tf_scores_are_the_ground_floor_ones() -> None:
    old = [1, 1, 1, 1, 1, 0, 0, 0, 1, 0]
    new = [1, 1, 0, 1, 0, 1, 1, 0, 1, 1]
    scores = tf_helpers.compatibility_scores(old, new)
    assert scores == compatibility.compatibility_scores(compatibility.counts_from_correct(old, new))
    assert scores == {"nfr": 2 / 10, "pfr": 3 / 10, "nfi": 2 / 3, "btc": 4 / 6, "bec": 1 / 3}

"""The release statistics: exact scores on hand-made predictions, Wilson and McNemar against
scipy's, NFR per class and group, the flip matrix and each gate."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import binomtest

from clarena.metrics.functional.release import (
    compare_predictions,
    evaluate_gates,
    mcnemar_exact,
    wilson_interval,
)

# index:       0  1  2  3  4  5  6  7  8  9 10 11
LABELS = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
OLD = [0, 0, 0, 1, 1, 1, 1, 0, 2, 2, 0, 0]  # right at 0 1 2 4 5 6 8 9 -> 8
NEW = [0, 1, 0, 1, 1, 2, 1, 1, 2, 0, 2, 0]  # right at 0 2 4 6 7 8 10 -> 7
# both right 0 2 4 6 8 (5); negative flips 1 5 9 (3); positive flips 7 10 (2); both wrong 3 11 (2)
GROUPS = ["a", "b", "a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]


def test_scores_of_hand_made_predictions_are_exact() -> None:
    result = compare_predictions(LABELS, OLD, NEW)
    assert result["n"] == 12
    assert result["old_accuracy"] == 8 / 12 and result["new_accuracy"] == 7 / 12
    counts = {k: result[k] for k in ("both_correct", "both_wrong", "negative_flips")}
    assert counts == {"both_correct": 5, "both_wrong": 2, "negative_flips": 3}
    assert result["positive_flips"] == 2
    assert result["nfr"] == 3 / 12
    assert result["pfr"] == 2 / 12
    assert result["nfi"] == 3 / 5  # of the new model's 5 errors, 3 are new
    assert result["btc"] == 5 / 8
    assert result["bec"] == 2 / 5
    assert result["mcnemar_p"] == 1.0  # 2 * P(Bin(5, 1/2) <= 2) = 2 * 16/32, capped at 1


def test_per_class_and_per_group_nfr_are_exact_with_wilson_intervals() -> None:
    result = compare_predictions(LABELS, OLD, NEW, GROUPS)
    per_class = {r["class"]: (r["n"], r["negative_flips"], r["nfr"]) for r in result["per_class"]}
    assert per_class == {0: (4, 1, 0.25), 1: (4, 1, 0.25), 2: (4, 1, 0.25)}
    per_group = {r["group"]: (r["n"], r["nfr"]) for r in result["per_group"]}
    assert per_group == {"a": (6, 0.0), "b": (6, 0.5)}  # the flips 1, 5, 9 are all in b
    for row in result["per_class"] + result["per_group"]:
        low, high = wilson_interval(row["negative_flips"], row["n"])
        assert (row["ci_low"], row["ci_high"]) == (low, high)
    assert result["per_group"][0]["ci_low"] == 0.0  # no flip in group a: the interval starts at 0
    assert compare_predictions(LABELS, OLD, NEW)["per_class"][0]["class"] == 0
    assert isinstance(result["per_class"][0]["class"], int)  # a plain int, for JSON


def test_flip_matrix_counts_old_to_new_predictions_of_negative_flips() -> None:
    matrix = compare_predictions(LABELS, OLD, NEW)["flip_matrix"]
    assert matrix["classes"] == [0, 1, 2]
    # flips: sample 1 (0 -> 1), sample 5 (1 -> 2), sample 9 (2 -> 0)
    assert matrix["counts"] == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]


def test_string_labels_and_classes_seen_only_in_predictions() -> None:
    result = compare_predictions(["cat", "dog", "dog"], ["cat", "dog", "dog"], ["cow", "dog", "x"])
    assert [r["class"] for r in result["per_class"]] == ["cat", "dog"]
    assert result["flip_matrix"]["classes"] == ["cat", "cow", "dog", "x"]
    assert result["nfr"] == 2 / 3 and math.isnan(result["pfr"]) is False and result["pfr"] == 0.0


WILSON_CASES = [(0, 1), (0, 40), (1, 1), (1, 10), (2, 10), (7, 13), (50, 50), (3, 1000), (517, 999)]


@pytest.mark.parametrize(("k", "n"), WILSON_CASES)
@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.99])
def test_wilson_interval_equals_scipys(k: int, n: int, confidence: float) -> None:
    ours = wilson_interval(k, n, confidence)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    assert ours == pytest.approx((ci.low, ci.high), rel=1e-12, abs=1e-15)


def test_wilson_interval_of_nothing_and_bad_arguments() -> None:
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)


MCNEMAR_CASES = [(0, 0), (1, 0), (0, 7), (9, 2), (2, 9), (5, 5), (6, 5), (30, 12), (400, 340)]
MCNEMAR_CASES += [(3000, 2830), (30_000, 29_500), (600_000, 598_000)]  # past EXACT_UP_TO: floats


@pytest.mark.parametrize(("b", "c"), MCNEMAR_CASES)
def test_exact_mcnemar_equals_scipys_binomial_test_on_the_discordant_pairs(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_by_hand() -> None:
    assert mcnemar_exact(9, 2) == 2 * (1 + 11 + 55) / 2**11  # 2 * P(Bin(11, 1/2) <= 2)
    assert mcnemar_exact(0, 12) == 2 / 2**12 and mcnemar_exact(7, 7) == 1.0
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 2)


def test_bad_inputs_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"differ in length \(3 labels, 2 old predictions"):
        compare_predictions([0, 1, 2], [0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="no sample"):
        compare_predictions([], [], [])


def _gates(result: dict, **limits: float) -> dict[str, tuple[float, bool]]:
    return {g["name"]: (g["value"], g["passed"]) for g in evaluate_gates(result, **limits)}


def test_each_gate_passes_and_fails_at_its_limit() -> None:
    result = compare_predictions(LABELS, OLD, NEW)
    assert evaluate_gates(result) == []
    assert _gates(result, max_nfr=0.25) == {"max_nfr": (0.25, True)}
    assert _gates(result, max_nfr=0.2) == {"max_nfr": (0.25, False)}
    assert _gates(result, max_class_nfr=0.25) == {"max_class_nfr": (0.25, True)}
    assert _gates(result, max_class_nfr=0.24) == {"max_class_nfr": (0.25, False)}
    gain = 100 * (7 / 12 - 8 / 12)  # -8.33 points
    assert _gates(result, min_accuracy_gain=-9.0) == {"min_accuracy_gain": (gain, True)}
    assert _gates(result, min_accuracy_gain=0.0) == {"min_accuracy_gain": (gain, False)}
    assert _gates(result, alpha=0.05) == {"alpha": (1.0, True)}
    worse = compare_predictions([0] * 20, [0] * 20, [1] * 12 + [0] * 8)  # 12 flips, none fixed
    assert worse["mcnemar_p"] == 2 / 2**12
    assert _gates(worse, alpha=0.05) == {"alpha": (2 / 2**12, False)}
    better = compare_predictions([0] * 20, [1] * 12 + [0] * 8, [0] * 20)  # 12 fixed, none broken
    assert _gates(better, alpha=0.05) == {"alpha": (2 / 2**12, True)}  # better, not worse
    gate = evaluate_gates(result, max_class_nfr=0.1)[0]
    assert gate == {
        "name": "max_class_nfr",
        "limit": 0.1,
        "value": 0.25,
        "passed": False,
        "class": 0,
    }


def test_release_statistics_import_no_torch() -> None:
    code = "import sys, clarena.metrics.functional.release; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_large_inputs_are_vectorised() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 200_000)
    old = np.where(rng.random(200_000) < 0.9, labels, (labels + 1) % 10)
    new = np.where(rng.random(200_000) < 0.9, labels, (labels + 2) % 10)
    result = compare_predictions(labels, old, new)
    assert result["negative_flips"] == int(((old == labels) & (new != labels)).sum())
    assert sum(r["negative_flips"] for r in result["per_class"]) == result["negative_flips"]
    assert np.asarray(result["flip_matrix"]["counts"]).sum() == result["negative_flips"]


def test_docstring_examples() -> None:
    import doctest

    from clarena.metrics.functional import release

    failures, tried = doctest.testmod(release)
    assert tried == 2 and failures == 0

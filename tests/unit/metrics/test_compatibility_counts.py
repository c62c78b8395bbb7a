"""NFR, PFR, NFI, BTC, BEC on prediction vectors built by hand; pooled over uneven batches."""

from __future__ import annotations

import math

import pytest
import torch

from clarena.metrics import (
    BackwardErrorCompatibility,
    BackwardTrustCompatibility,
    CompatibilityCounts,
    IncompatiblePointsPerClass,
    NegativeFlipImpact,
    NegativeFlipRate,
    PositiveFlipRate,
    backward_error_compatibility,
    backward_trust_compatibility,
    compatibility_counts,
    negative_flip_impact,
    negative_flip_rate,
    negative_flips_per_class,
    positive_flip_rate,
)

# index:               0  1  2  3  4  5  6  7  8  9
TARGETS = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
OLD = torch.tensor([0, 1, 2, 0, 1, 0, 1, 2, 2, 1])  # right at 0 1 2 3 4 8 -> 6
NEW = torch.tensor([0, 1, 0, 0, 2, 2, 0, 0, 2, 0])  # right at 0 1 3 5 6 8 9 -> 7
# both right: 0 1 3 8 (4); negative flips: 2 4 (2); positive flips: 5 6 9 (3); both wrong: 7 (1)


def test_counts_by_hand():
    counts = {k: int(v) for k, v in compatibility_counts(OLD, NEW, TARGETS).items()}
    assert counts == {
        "total": 10,
        "old_correct": 6,
        "new_correct": 7,
        "both_correct": 4,
        "both_wrong": 1,
        "negative_flips": 2,
        "positive_flips": 3,
    }


def test_scores_by_hand():
    assert float(negative_flip_rate(OLD, NEW, TARGETS)) == pytest.approx(2 / 10)
    assert float(positive_flip_rate(OLD, NEW, TARGETS)) == pytest.approx(3 / 10)
    assert float(backward_trust_compatibility(OLD, NEW, TARGETS)) == pytest.approx(4 / 6)
    # BEC divides by the NEW model's 3 errors (BackwardCompatibilityML's code: old's 4 -> 1/4)
    assert float(backward_error_compatibility(OLD, NEW, TARGETS)) == pytest.approx(1 / 3)
    # NFI: 2 negative flips of the new model's 3 errors (indices 2, 4, 7)
    assert float(negative_flip_impact(OLD, NEW, TARGETS)) == pytest.approx(2 / 3)
    nfi = NegativeFlipImpact()
    nfi.update(OLD[:4], NEW[:4], TARGETS[:4])
    nfi.update(OLD[4:], NEW[4:], TARGETS[4:])
    assert float(nfi.compute()) == pytest.approx(2 / 3)


def test_nfr_equals_old_accuracy_times_one_minus_btc():
    # by hand: 0.6 * (1 - 4/6) = 0.2
    nfr = float(negative_flip_rate(OLD, NEW, TARGETS))
    assert nfr == pytest.approx(0.6 * (1 - 4 / 6))
    generator = torch.Generator().manual_seed(3)
    for _ in range(20):
        targets = torch.randint(0, 5, (97,), generator=generator)
        old = torch.randint(0, 5, (97,), generator=generator)
        new = torch.randint(0, 5, (97,), generator=generator)
        acc_old = float((old == targets).float().mean())
        btc = float(backward_trust_compatibility(old, new, targets))
        assert float(negative_flip_rate(old, new, targets)) == pytest.approx(acc_old * (1 - btc))


def test_incompatible_points_per_class_by_hand():
    # negative flips at index 2 (class 2) and 4 (class 1)
    assert negative_flips_per_class(OLD, NEW, TARGETS, 3).tolist() == [0, 1, 1]
    metric = IncompatiblePointsPerClass(num_classes=4)
    metric.update(OLD[:3], NEW[:3], TARGETS[:3])
    metric.update(OLD[3:], NEW[3:], TARGETS[3:])
    assert metric.compute().tolist() == [0, 1, 1, 0]


def test_uneven_batches_give_the_pooled_value_not_the_mean_of_batches():
    batches = [slice(0, 2), slice(2, 10)]  # 2 points, then 8
    metrics = {
        "btc": BackwardTrustCompatibility(),
        "nfr": NegativeFlipRate(),
        "pfr": PositiveFlipRate(),
        "bec": BackwardErrorCompatibility(),
    }
    for part in batches:
        for metric in metrics.values():
            metric.update(OLD[part], NEW[part], TARGETS[part])
    assert float(metrics["btc"].compute()) == pytest.approx(4 / 6)
    assert float(metrics["nfr"].compute()) == pytest.approx(2 / 10)
    assert float(metrics["pfr"].compute()) == pytest.approx(3 / 10)
    assert float(metrics["bec"].compute()) == pytest.approx(1 / 3)
    # the per-batch average is a different number: BTC 2/2 and 2/4 -> 0.75; NFR 0/2, 2/8 -> 0.125
    per_batch_btc = [
        float(backward_trust_compatibility(OLD[p], NEW[p], TARGETS[p])) for p in batches
    ]
    per_batch_nfr = [float(negative_flip_rate(OLD[p], NEW[p], TARGETS[p])) for p in batches]
    assert sum(per_batch_btc) / 2 == pytest.approx(0.75)
    assert sum(per_batch_nfr) / 2 == pytest.approx(0.125)


def test_compatibility_counts_metric_returns_counts_and_scores():
    metric = CompatibilityCounts()
    metric.update(OLD[:7], NEW[:7], TARGETS[:7])
    metric.update(OLD[7:], NEW[7:], TARGETS[7:])
    out = metric.compute()
    assert int(out["both_correct"]) == 4 and int(out["negative_flips"]) == 2
    assert float(out["bec"]) == pytest.approx(1 / 3)
    metric.reset()
    assert int(metric.total) == 0 and int(metric.both_wrong) == 0


def test_undefined_ratios_are_nan():
    targets = torch.tensor([0, 1])
    never_right = torch.tensor([1, 0])
    assert math.isnan(float(backward_trust_compatibility(never_right, targets, targets)))
    assert math.isnan(float(backward_error_compatibility(never_right, targets, targets)))
    assert math.isnan(float(negative_flip_impact(never_right, targets, targets)))
    empty = torch.tensor([], dtype=torch.int64)
    assert math.isnan(float(negative_flip_rate(empty, empty, empty)))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="1-D tensor of class labels"):
        compatibility_counts(torch.zeros(3, 2, dtype=torch.long), NEW[:3], TARGETS[:3])
    with pytest.raises(ValueError, match="integer class labels"):
        compatibility_counts(OLD.float(), NEW, TARGETS)
    with pytest.raises(ValueError, match="same length"):
        compatibility_counts(OLD[:4], NEW, TARGETS)
    with pytest.raises(ValueError, match="raise num_classes"):
        negative_flips_per_class(OLD, NEW, TARGETS, 2)
    with pytest.raises(ValueError, match="positive integer"):
        IncompatiblePointsPerClass(num_classes=0)

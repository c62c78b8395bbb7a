"""A sweep over seeds: mean ± standard error, changes paired by seed, the Pareto front, settings."""

from __future__ import annotations

import pytest

from clarena.metrics.sweep import SweepPoint, name_settings
from clarena.metrics.sweep_summary import aggregate, pareto_front
from clarena.reports.sweep import seed_summary


def point(algorithm, lam, seed, acc, nfr, **hyper):
    kind = {"BCNewError": "new_error", "FocalDistillation": "focal_kl"}.get(algorithm, "other")
    return SweepPoint(
        name=f"{algorithm}-{lam}-{seed}",
        algorithm=algorithm,
        kind=kind,
        lambda_c=lam,
        comparison="consecutive",
        accuracy=acc,
        old_accuracy=0.8,
        btc=None,
        bec=None,
        nfr=nfr,
        pfr=None,
        average_accuracy=None,
        seed=seed,
        hyper_parameters=hyper,
    )


def test_groups_pair_their_seeds_with_the_baseline():
    points = [
        point("BCNewError", 0.0, 1, 0.90, 0.040),
        point("BCNewError", 0.0, 2, 0.88, 0.020),
        point("BCNewError", 1.0, 1, 0.89, 0.020),
        point("BCNewError", 1.0, 2, 0.88, 0.016),
        # strict imitation at 0 is the same baseline model: one run per seed is kept
        point("StrictImitation", 0.0, 1, 0.90, 0.040),
    ]
    base, bc = aggregate(points)
    assert (base.kind, base.seeds, base.accuracy.n) == ("baseline", [1, 2], 2)
    assert base.nfr.mean == pytest.approx(0.03) and base.nfr.standard_error == pytest.approx(0.01)
    assert bc.label == "BCNewError λc=1" and bc.seeds == [1, 2]
    # accuracy changes -0.01 and 0: mean -0.005, se 0.005
    assert bc.accuracy_change.mean == pytest.approx(-0.005)
    assert bc.accuracy_change.standard_error == pytest.approx(0.005)
    # NFR changes -0.020 and -0.004: mean -0.012 over baseline 0.03 -> -40 %, se 0.008 / 0.03
    assert bc.nfr_relative_change.mean == pytest.approx(-0.4)
    assert bc.nfr_relative_change.standard_error == pytest.approx(0.008 / 0.03)


def test_pareto_front():
    points = [
        point("BCNewError", 0.0, 1, 0.90, 0.030),
        point("BCNewError", 1.0, 1, 0.89, 0.020),  # fewer flips, lower accuracy: on the front
        point("BCNewError", 2.0, 1, 0.88, 0.025),  # beaten by lambda 1 in both
        point("BCNewError", 3.0, 1, 0.89, 0.020),  # ties lambda 1: neither beats the other
    ]
    groups = aggregate(points)
    assert [g.pareto for g in groups] == [True, True, False, True]
    assert [g.lambda_c for g in pareto_front(groups)] == [0.0, 1.0, 3.0]


def test_settings_name_the_hyper_parameters_that_vary():
    points = [
        point("FocalDistillation", 1.0, 1, 0.9, 0.02, distance="kl", alpha=1.0, beta=5.0),
        point("FocalDistillation", 1.0, 1, 0.9, 0.03, distance="lm", alpha=1.0, beta=5.0),
        point("BCNewError", 1.0, 1, 0.9, 0.03, loss="cross_entropy"),
    ]
    name_settings(points)
    assert [p.setting for p in points] == ["distance=kl", "distance=lm", ""]
    assert len(aggregate(points)) == 3


def test_the_page_section_needs_two_seeds():
    one_seed = [point("BCNewError", 0.0, 1, 0.9, 0.03), point("BCNewError", 1.0, 1, 0.9, 0.02)]
    assert seed_summary(one_seed) == []
    two_seeds = [*one_seed, point("BCNewError", 0.0, 2, 0.88, 0.02)]
    html = "".join(seed_summary(two_seeds))
    assert "Mean over seeds" in html and "89.00 ± 1.00" in html
    assert "Ensemble" not in html  # the points have no saved models

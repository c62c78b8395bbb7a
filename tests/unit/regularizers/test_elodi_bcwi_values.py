"""ELODI's logit difference inhibition and BCWI's interpolation against hand computations."""

from __future__ import annotations

import pytest
import torch

from clarena.cl_algorithms.regularizers import (
    LogitDifferenceInhibitionReg,
    choose_alpha,
    focal_distillation_lm,
    interpolate_weights,
    logit_difference_inhibition,
    top_k_union,
)


def test_ldi_is_zero_when_the_student_equals_the_ensemble_mean() -> None:
    student = torch.tensor([[2.0, -1.0, 0.5, 3.0], [0.0, 1.0, -2.0, 4.0]], requires_grad=True)
    offset = torch.tensor([[0.7, -0.2, 1.5, -3.0], [2.0, 0.1, -0.4, 0.3]])
    members = torch.stack([student.detach() + offset, student.detach() - offset])  # mean = student
    value = LogitDifferenceInhibitionReg(1.5, top_k=2)(student, members)
    value.backward()
    assert value.item() == 0.0
    assert torch.equal(student.grad, torch.zeros_like(student))


def test_ldi_value_and_gradient_match_a_hand_computation() -> None:
    # one sample, 4 classes; ensemble mean [2, 0, 1, -1]
    student = torch.tensor([[1.0, 3.0, 0.5, 0.0]], requires_grad=True)
    members = torch.tensor([[[3.0, 1.0, 1.0, -2.0]], [[1.0, -1.0, 1.0, 0.0]]])
    # top-2 of the student: classes 1, 0; of the ensemble: 0, 2 -> S = {0, 1, 2}
    # differences: 1-2 = -1, 3-0 = 3, 0.5-1 = -0.5, (class 3 outside S)
    # margin 0.6 drops class 2: value = 0.5 * lambda * (1 + 9) = 5 * lambda
    value = logit_difference_inhibition(student, members, 0.4, top_k=2, margin=0.6)
    value.backward()
    assert value.item() == pytest.approx(2.0, abs=1e-6)
    # gradient lambda * Delta on the penalised classes, 0 elsewhere
    torch.testing.assert_close(student.grad, torch.tensor([[-0.4, 1.2, 0.0, 0.0]]))
    # the same with p = 1: lambda * sum |Delta| = 0.4 * 4 and the gradient lambda * sign(Delta)
    student.grad = None
    value = logit_difference_inhibition(student, members, 0.4, top_k=2, margin=0.6, p=1.0)
    value.backward()
    assert value.item() == pytest.approx(1.6, abs=1e-6)
    torch.testing.assert_close(student.grad, torch.tensor([[-0.4, 0.4, 0.0, 0.0]]))


def test_top_k_union_and_the_full_set_reduce_to_logit_matching() -> None:
    student = torch.tensor([[0.0, 5.0, 1.0], [4.0, 0.0, 3.0]])
    reference = torch.tensor([[2.0, 1.0, 0.0], [4.0, 0.0, 3.0]])
    assert top_k_union(student, reference, 1).tolist() == [[1, 1, 0], [1, 0, 0]]
    g = torch.Generator().manual_seed(0)
    z2, z1 = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    y = torch.zeros(5, dtype=torch.long)
    ldi = logit_difference_inhibition(z2, z1, 0.3, top_k=6)
    torch.testing.assert_close(ldi, focal_distillation_lm(z2, z1, y, 0.3, alpha=1.0, beta=0.0))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"factor": -1.0}, "factor"),
        ({"top_k": 0}, "top_k"),
        ({"margin": -0.1}, "margin"),
        ({"p": 0.5}, "p must be >= 1"),
        ({"reduction": "avg"}, "reduction"),
    ],
)
def test_ldi_refuses_bad_options(options: dict, message: str) -> None:
    arguments = {"factor": 1.0, **options}
    with pytest.raises(ValueError, match=message):
        LogitDifferenceInhibitionReg(**arguments)


def test_ldi_refuses_logits_of_other_classes() -> None:
    with pytest.raises(ValueError, match="same classes"):
        logit_difference_inhibition(torch.zeros(2, 3), torch.zeros(4, 2, 4), 1.0)


def test_interpolation_ends_are_exactly_the_old_and_new_weights() -> None:
    g = torch.Generator().manual_seed(1)
    old = {"w": torch.randn(7, 5, generator=g), "n": torch.tensor(3)}
    new = {"w": torch.randn(7, 5, generator=g), "n": torch.tensor(9)}
    assert torch.equal(interpolate_weights(old, new, 0.0)["w"], old["w"])
    assert torch.equal(interpolate_weights(old, new, 1.0)["w"], new["w"])
    quarter = interpolate_weights(old, new, 0.25)
    torch.testing.assert_close(quarter["w"], 0.75 * old["w"] + 0.25 * new["w"])
    assert quarter["n"].item() == 9  # counters come from the new model


def test_interpolation_refuses_other_architectures_and_bad_alpha() -> None:
    with pytest.raises(ValueError, match="shape"):
        interpolate_weights({"w": torch.zeros(2)}, {"w": torch.zeros(3)}, 0.5)
    with pytest.raises(ValueError, match="different tensors"):
        interpolate_weights({"w": torch.zeros(2)}, {"v": torch.zeros(2)}, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate_weights({"w": torch.zeros(2)}, {"w": torch.zeros(2)}, 1.5)


def test_choose_alpha_by_budget_and_by_score() -> None:
    alphas = [0.0, 0.25, 0.5, 0.75, 1.0]
    accuracy = [0.70, 0.78, 0.82, 0.83, 0.84]
    nfr = [0.0, 0.004, 0.009, 0.02, 0.03]
    assert choose_alpha(alphas, accuracy, nfr, "nfr_budget", max_nfr=0.01) == 0.5
    assert choose_alpha(alphas, accuracy, nfr, "nfr_budget", max_nfr=0.0) == 0.0
    # accuracy - mu * NFR: 0.70, 0.776, 0.802, 0.79, 0.78 with mu = 2
    assert choose_alpha(alphas, accuracy, nfr, "score", nfr_weight=2.0) == 0.5
    assert choose_alpha(alphas, accuracy, nfr, "score", nfr_weight=0.0) == 1.0
    with pytest.raises(ValueError, match="max_nfr"):
        choose_alpha([0.5, 1.0], [0.8, 0.9], [0.02, 0.03], "nfr_budget", max_nfr=0.01)

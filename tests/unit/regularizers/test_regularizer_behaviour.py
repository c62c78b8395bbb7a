"""Edge cases and argument validation of the regularizers."""

from __future__ import annotations

import pytest
import torch

from clarena.cl_algorithms.regularizers import (
    BCNewErrorReg,
    DistillationReg,
    ParameterChangeReg,
    StrictImitationReg,
    distillation_reg,
    new_error_dissonance,
    online_fisher_update,
    parameter_change_reg,
    strict_imitation_dissonance,
)

LOSSES = ["nll", "cross_entropy", "kl_div", "binary_cross_entropy"]


def published_lwf(student, teacher, temperature, eps=1e-5):
    """Li & Hoiem's eq. 3 as published: renormalised p^(1/T), q^(1/T), and log(p + eps)."""
    p = torch.softmax(student, dim=1) ** (1 / temperature)
    p = p / p.sum(dim=1, keepdim=True)
    q = torch.softmax(teacher, dim=1) ** (1 / temperature)
    q = q / q.sum(dim=1, keepdim=True)
    return -(q * torch.log(p + eps)).sum(dim=1).mean()


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_lwf_cross_entropy_agrees_with_the_published_epsilon_form(temperature):
    g = torch.Generator().manual_seed(0)
    # ordinary logits (standard normal, 10 classes); the epsilon matters only where p < ~1e-3
    student = torch.randn(64, 10, generator=g, dtype=torch.float64)
    teacher = torch.randn(64, 10, generator=g, dtype=torch.float64)
    ours = distillation_reg(student, teacher, 1.0, temperature, "cross_entropy")
    published = published_lwf(student, teacher, temperature)
    assert ours.item() == pytest.approx(published.item(), rel=1e-4)


def test_distillation_extreme_logits_stay_finite():
    student = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], requires_grad=True)
    teacher = torch.tensor([[-1e4, 1e4, 0.0], [1e4, -1e4, 0.0]])
    for distance in ("cross_entropy", "MSE"):
        value = DistillationReg(1.0, 2.0, distance)(student, teacher)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(student.grad).all()
        student.grad = None


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_dissonance_extreme_logits_stay_finite(loss, scale):
    g = torch.Generator().manual_seed(1)
    binary = loss == "binary_cross_entropy"
    shape = (6,) if binary else (6, 5)
    h2 = (scale * torch.randn(shape, generator=g)).requires_grad_()
    h1 = scale * torch.randn(shape, generator=g)
    y = torch.randint(0, 2, (6,), generator=g).float() if binary else torch.randint(0, 5, (6,))
    for fn in (
        lambda: new_error_dissonance(h2, h1, y, loss, 1.0),
        lambda: strict_imitation_dissonance(h2, h1, y, loss, 1.0, 2.0, 0.5),
    ):
        value = fn()
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(h2.grad).all()
        h2.grad = None


@pytest.mark.parametrize("loss", LOSSES)
def test_empty_support_gives_zero_dissonance_and_finite_gradients(loss):
    if loss == "binary_cross_entropy":
        h2 = torch.tensor([0.3, -0.2], requires_grad=True)
        h1, y = torch.tensor([-5.0, 5.0]), torch.tensor([1.0, 0.0])
    else:
        h2 = torch.tensor([[0.3, 0.1], [0.0, 0.2]], requires_grad=True)
        h1, y = torch.tensor([[0.0, 5.0], [5.0, 0.0]]), torch.tensor([0, 1])
    for value in (
        new_error_dissonance(h2, h1, y, loss, 1.0),
        strict_imitation_dissonance(h2, h1, y, loss, 1.0),
    ):
        assert value.item() == 0.0
        (grad,) = torch.autograd.grad(value, h2)
        assert torch.isfinite(grad).all() and (grad == 0).all()


def test_distillation_arguments_are_validated():
    with pytest.raises(ValueError, match="distance"):
        DistillationReg(1.0, 2.0, "KL")
    with pytest.raises(ValueError, match="temperature"):
        DistillationReg(1.0, 0.0, "cross_entropy")
    with pytest.raises(ValueError, match="temperature"):
        DistillationReg(1.0, -1.0, "MSE")
    with pytest.raises(ValueError, match="factor"):
        DistillationReg(-0.5, 2.0, "cross_entropy")
    with pytest.raises(ValueError, match="factor"):
        distillation_reg(torch.zeros(2, 3), torch.zeros(2, 3), float("nan"))
    with pytest.raises(ValueError, match="teacher_logits"):
        distillation_reg(torch.zeros(2, 3), torch.zeros(3, 3), 1.0)


@pytest.mark.parametrize("cls", [BCNewErrorReg, StrictImitationReg])
def test_dissonance_arguments_are_validated(cls):
    with pytest.raises(ValueError, match="loss"):
        cls("hinge", 1.0)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="lambda_c"):
            cls("cross_entropy", bad)
    with pytest.raises(ValueError, match="reduction"):
        cls("cross_entropy", 1.0, reduction="max")
    with pytest.raises(ValueError, match="output"):
        cls("cross_entropy", 1.0, output="scores")
    with pytest.raises(ValueError, match="discriminant_pivot"):
        cls("binary_cross_entropy", 1.0, discriminant_pivot=-0.1)
    if cls is StrictImitationReg:
        with pytest.raises(ValueError, match="temperature"):
            cls("kl_div", 1.0, temperature=0.0)
        with pytest.raises(ValueError, match="focal_alpha"):
            cls("kl_div", 1.0, focal_alpha=float("nan"))


@pytest.mark.parametrize("fn", [new_error_dissonance, strict_imitation_dissonance])
def test_dissonance_inputs_are_validated(fn):
    h2, h1, y = torch.zeros(4, 3), torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="target"):
        fn(h2, h1, y.float(), "cross_entropy", 1.0)  # float labels for a multi-class loss
    with pytest.raises(ValueError, match="target"):
        fn(h2, h1, y[:3], "cross_entropy", 1.0)  # batch size mismatch
    with pytest.raises(ValueError, match="h1_output"):
        fn(h2, h1[:3], y, "cross_entropy", 1.0)
    with pytest.raises(ValueError, match="h2_output"):
        fn(torch.zeros(4), torch.zeros(4), y, "cross_entropy", 1.0)
    with pytest.raises(ValueError, match="h2_output"):
        fn(h2, h1, y.float(), "binary_cross_entropy", 1.0)  # three outputs per sample
    with pytest.raises(ValueError, match="target"):
        fn(torch.zeros(4), torch.zeros(4), torch.zeros(3), "binary_cross_entropy", 1.0)
    with pytest.raises(ValueError, match="lambda_c"):
        fn(h2, h1, y, "cross_entropy", -2.0)


def test_parameter_change_arguments_are_validated():
    params = {"w": torch.zeros(3)}
    with pytest.raises(ValueError, match="factor"):
        ParameterChangeReg(-1.0)
    with pytest.raises(ValueError, match="params"):
        parameter_change_reg(params, {"v": torch.zeros(3)}, 1.0)
    with pytest.raises(ValueError, match="anchors"):
        parameter_change_reg(params, {"w": torch.zeros(2)}, 1.0)
    with pytest.raises(ValueError, match="importances"):
        parameter_change_reg(params, {"w": torch.zeros(3)}, 1.0, {"w": torch.zeros(2)})
    with pytest.raises(ValueError, match="importances"):
        parameter_change_reg(params, {"w": torch.zeros(3)}, 1.0, {})
    with pytest.raises(ValueError, match="gamma"):
        online_fisher_update(None, params, -0.5)
    with pytest.raises(ValueError, match="old"):
        online_fisher_update({"w": torch.zeros(2)}, params, 0.5)
    # nothing anchored: a zero on the parameters' device
    assert parameter_change_reg(params, {}, 1.0).item() == 0.0


def test_numbers_from_numpy_are_accepted_and_strings_refused():
    import numpy as np

    assert BCNewErrorReg("kl_div", np.float32(0.5)).lambda_c == 0.5
    assert DistillationReg(np.float64(2.0), np.int64(3), "MSE").temperature == 3.0
    with pytest.raises(ValueError, match="lambda_c"):
        StrictImitationReg("kl_div", "0.5")
    with pytest.raises(ValueError, match="factor"):
        ParameterChangeReg(True)

"""Exact values of every regularizer on tiny hand-computed batches.

The batch: K = 3 classes, B = 3 samples, labels y = (0, 1, 2).
h2 logits (2, 0, -1), (0, 1, 0), (1, 0, 0); h1 logits (1, 0, 0), (3, 0, 0), (0, 0, 2), so h1 gets
samples 1 and 3 right: the support is S = {1, 3}.
Per-sample cross-entropy of h2: l_i = log(sum_k e^{z_ik}) - z_{i,y_i}
  l_1 = log(e^2 + 1 + e^-1) - 2 = 0.16984602, l_2 = log(2 + e) - 1 = 0.55144471,
  l_3 = log(e + 2) - 0 = 1.55144471.
The numbers below were worked out with Python's `math` module from these formulas.
"""

from __future__ import annotations

import pytest
import torch

from clarena.cl_algorithms.regularizers import (
    BCNewErrorReg,
    DistillationReg,
    ParameterChangeReg,
    StrictImitationReg,
    base_loss,
    distillation_reg,
    imitation_divergence,
    new_error_dissonance,
    online_fisher_update,
    parameter_change_reg,
    strict_imitation_dissonance,
    support_mask,
)

H2 = [[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
H1 = [[1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 2.0]]
Y = [0, 1, 2]
ELL = [0.16984601955628564, 0.5514447139320511, 1.551444713932051]
# Binary batch: h2 logits (2, -1, 0.5, 0), h1 logits (1, 1, -2, 0), labels (1, 0, 0, 0).
# h1 predicts sigmoid >= 0.5: (1, 1, 0, 1), so S = {1, 3}.
Z2 = [2.0, -1.0, 0.5, 0.0]
Z1 = [1.0, 1.0, -2.0, 0.0]
YB = [1.0, 0.0, 0.0, 0.0]
ELL_B = [0.12692801104297263, 0.3132616875182228, 0.9740769841801068, 0.6931471805599453]


def tensors(dtype=torch.float64):
    h2 = torch.tensor(H2, dtype=dtype, requires_grad=True)
    return h2, torch.tensor(H1, dtype=dtype), torch.tensor(Y)


def binary(dtype=torch.float64):
    z2 = torch.tensor(Z2, dtype=dtype, requires_grad=True)
    return z2, torch.tensor(Z1, dtype=dtype), torch.tensor(YB, dtype=dtype)


def test_base_loss_and_support_multiclass():
    h2, h1, y = tensors()
    for loss in ("nll", "cross_entropy", "kl_div"):
        torch.testing.assert_close(base_loss(h2, y, loss), torch.tensor(ELL, dtype=torch.float64))
    assert support_mask(h1, y, "cross_entropy").tolist() == [True, False, True]


def test_base_loss_and_support_binary():
    z2, z1, y = binary()
    expected = torch.tensor(ELL_B, dtype=torch.float64)
    torch.testing.assert_close(base_loss(z2, y, "binary_cross_entropy"), expected)
    # the same on probabilities, and with (B, 1) columns
    p2 = torch.sigmoid(z2)
    got = base_loss(p2[:, None], y[:, None], "binary_cross_entropy", "probabilities")
    torch.testing.assert_close(got, expected)
    assert support_mask(z1, y, "binary_cross_entropy").tolist() == [True, False, True, False]
    # a pivot of 0.6 flips sample 4 (sigmoid(0) = 0.5 < 0.6 predicts 0 = its label)
    assert support_mask(z1, y, "binary_cross_entropy", 0.6).tolist() == [True, False, True, True]


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [
        ("mean", 0.28688178891472277),
        ("sum", 3 * 0.28688178891472277),
        ("none", [0.08492300977814282, 0.0, 0.7757223569660255]),
    ],
)
@pytest.mark.parametrize("loss", ["nll", "cross_entropy", "kl_div"])
def test_new_error_multiclass(loss, reduction, expected):
    h2, h1, y = tensors()
    expected = torch.tensor(expected, dtype=torch.float64)
    reg = BCNewErrorReg(loss, lambda_c=0.5, reduction=reduction)
    torch.testing.assert_close(reg(h2, h1, y), expected)
    functional = new_error_dissonance(h2, h1, y, loss, 0.5, reduction=reduction)
    torch.testing.assert_close(functional, expected)


# Strict imitation, lambda_c = 0.5, T = 1: d_i = -sum_k p1_ik log p2_ik (NLL, CE) and
# sum_k p1_ik (log p1_ik - log p2_ik) (KL); only samples 1 and 3 count.
D_CE = [1.2295538076417127, 1.5061662131884224, 1.44493773501285]
D_KL = [0.2542259784754909, 1.1395722523056873, 0.7793650531141627]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("loss", "d"), [("nll", D_CE), ("cross_entropy", D_CE), ("kl_div", D_KL)])
def test_strict_imitation_multiclass(loss, d, reduction):
    h2, h1, y = tensors()
    per_sample = torch.tensor([0.5 * d[0], 0.0, 0.5 * d[2]], dtype=torch.float64)
    expected = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]
    torch.testing.assert_close(imitation_divergence(h2, h1, loss), torch.tensor(d).double())
    reg = StrictImitationReg(loss, lambda_c=0.5, reduction=reduction)
    torch.testing.assert_close(reg(h2, h1, y), expected)
    torch.testing.assert_close(
        strict_imitation_dissonance(h2, h1, y, loss, 0.5, reduction=reduction), expected
    )


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        ("cross_entropy", 0.8807518060339042),
        ("nll", 0.8807518060339042),
        ("kl_div", 0.13017544562330238),
    ],
)
def test_strict_imitation_temperature_and_focal_alpha(loss, expected):
    # T = 2, alpha = 0.25, lambda_c = 1: mean of (1[S] + 0.25 (1 - 1[S])) d_i(T = 2)
    h2, h1, y = tensors()
    reg = StrictImitationReg(loss, lambda_c=1.0, temperature=2.0, focal_alpha=0.25)
    torch.testing.assert_close(reg(h2, h1, y), torch.tensor(expected, dtype=torch.float64))


def test_binary_new_error_and_strict_imitation():
    z2, z1, y = binary()
    # new-error: 0.5 * (l_1 + l_3) / 4
    new_error = (0.5 * ELL_B[0] + 0.5 * ELL_B[2]) / 4
    got = BCNewErrorReg("binary_cross_entropy", 0.5)(z2, z1, y)
    torch.testing.assert_close(got, torch.tensor(new_error, dtype=torch.float64))
    # strict: d_i = -[q1 log q2 + (1 - q1) log(1 - q2)] on samples 1 and 3
    d = [0.6648108537829625, 1.0443202661482278, 0.914475523169048, 0.6931471805599453]
    expected = torch.tensor([0.5 * d[0], 0.0, 0.5 * d[2], 0.0], dtype=torch.float64)
    got = StrictImitationReg("binary_cross_entropy", 0.5, reduction="none")(z2, z1, y)
    torch.testing.assert_close(got, expected)
    got = strict_imitation_dissonance(z2, z1, y, "binary_cross_entropy", 0.5, reduction="sum")
    torch.testing.assert_close(got, expected.sum())
    # on probabilities, the same numbers
    p2, p1 = torch.sigmoid(z2), torch.sigmoid(z1)
    got = StrictImitationReg("binary_cross_entropy", 0.5, output="probabilities")(p2, p1, y)
    torch.testing.assert_close(got, expected.mean())
    # T = 2, alpha = 0.25, lambda_c = 1
    reg = StrictImitationReg("binary_cross_entropy", 1.0, temperature=2.0, focal_alpha=0.25)
    torch.testing.assert_close(reg(z2, z1, y), torch.tensor(0.45477996960948947).double())
    reg = StrictImitationReg(
        "binary_cross_entropy", 1.0, temperature=2.0, focal_alpha=0.25, output="probabilities"
    )
    torch.testing.assert_close(reg(p2, p1, y), torch.tensor(0.45477996960948947).double())


def test_distillation_values():
    h2, h1, _ = tensors()
    # T = 2, factor 3: 3 * mean_i -sum_k softmax(h1/2)_ik log softmax(h2/2)_ik
    expected_ce = torch.tensor(3.555182705296738, dtype=torch.float64)
    torch.testing.assert_close(DistillationReg(3.0, 2.0, "cross_entropy")(h2, h1), expected_ce)
    torch.testing.assert_close(distillation_reg(h2, h1, 3.0, 2.0, "cross_entropy"), expected_ce)
    # MSE: 3 * (1 + 0 + 1 + 9 + 1 + 0 + 1 + 0 + 4) / 9 = 17 / 3
    expected_mse = torch.tensor(17 / 3, dtype=torch.float64)
    torch.testing.assert_close(DistillationReg(3.0, 2.0, "MSE")(h2, h1), expected_mse)
    torch.testing.assert_close(distillation_reg(h2, h1, 3.0, 2.0, "MSE"), expected_mse)


def test_parameter_change_values():
    params = {
        "w": torch.tensor([1.0, 2.0], requires_grad=True),
        "b": torch.tensor([0.5], requires_grad=True),
        "new_head": torch.tensor([7.0], requires_grad=True),  # not anchored: not penalised
    }
    anchors = {"w": torch.tensor([0.0, 1.0]), "b": torch.tensor([1.5])}
    fisher = {"w": torch.tensor([2.0, 3.0]), "b": torch.tensor([0.5])}
    # L2: 0.1 * (1 + 1 + 1); EWC: 0.1 * (2 * 1 + 3 * 1 + 0.5 * 1)
    torch.testing.assert_close(ParameterChangeReg(0.1)(params, anchors), torch.tensor(0.3))
    torch.testing.assert_close(parameter_change_reg(params, anchors, 0.1), torch.tensor(0.3))
    torch.testing.assert_close(ParameterChangeReg(0.1)(params, anchors, fisher), torch.tensor(0.55))
    ewc = parameter_change_reg(params, anchors, 0.1, fisher)
    torch.testing.assert_close(ewc, torch.tensor(0.55))
    ewc.backward()
    # d/dw 0.1 * F (w - a)^2 = 0.2 F (w - a)
    torch.testing.assert_close(params["w"].grad, torch.tensor([0.4, 0.6]))
    torch.testing.assert_close(params["b"].grad, torch.tensor([0.1 * -1.0]))
    assert params["new_head"].grad is None


def test_ewc_penalty_gives_autograd_floats_bit_for_bit():
    """The hand-written backward of the EWC penalty gives exactly the floats autograd gave for
    `factor * sum(F * (theta - anchor).pow(2))`, so fixed-seed runs are unchanged."""
    gen = torch.Generator().manual_seed(0)
    shapes = {"w": (40, 78), "b": (40,)}
    params = {n: torch.randn(s, generator=gen).requires_grad_() for n, s in shapes.items()}
    anchors = {
        n: p.detach() + 0.01 * torch.randn(p.shape, generator=gen) for n, p in params.items()
    }
    fisher = {n: torch.rand(p.shape, generator=gen) for n, p in params.items()}
    penalty = parameter_change_reg(params, anchors, 1000.0, fisher)
    (0.37 * penalty).backward()
    reference_params = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
    terms = [(fisher[n] * (reference_params[n] - anchors[n]).pow(2)).sum() for n in shapes]
    reference = 1000.0 * (terms[0] + terms[1])
    (0.37 * reference).backward()
    assert torch.equal(penalty.detach(), reference.detach())
    for name in shapes:
        assert torch.equal(params[name].grad, reference_params[name].grad)


def test_online_fisher_update():
    old = {"w": torch.tensor([1.0, 2.0]), "old_only": torch.tensor([4.0])}
    new = {"w": torch.tensor([0.5, 0.5]), "new_only": torch.tensor([3.0])}
    merged = online_fisher_update(old, new, gamma=0.5)
    torch.testing.assert_close(merged["w"], torch.tensor([1.0, 1.5]))
    torch.testing.assert_close(merged["old_only"], torch.tensor([2.0]))
    torch.testing.assert_close(merged["new_only"], torch.tensor([3.0]))
    first = online_fisher_update(None, new, gamma=0.9)
    assert first["w"] is not new["w"]
    torch.testing.assert_close(first["w"], new["w"])

"""Exact values of FD-KL and FD-LM (focal distillation, Yan et al. 2021) on hand-made batches.

Weight per sample: w_i = alpha + beta * [argmax h1(x_i) = y_i].

FD-LM batch, K = 3, labels y = (0, 2, 2):
  h1 logits (2, 0, 0), (0, 1, 0), (0, 0, 3): h1 right on samples 1 and 3, wrong on sample 2;
  h2 logits (1, 0, 0), (0, 1, 2), (0, 1, 3): z2 - z1 = (-1, 0, 0), (0, 0, 2), (0, 1, 0),
  so d_i = 1/2 ||z2 - z1||^2 = (0.5, 2, 0.5).
FD-KL batch, K = 2, labels y = (0, 0, 1):
  h1 logits (ln 3, 0), (0, ln 3), (0, ln 4): p1 = (3/4, 1/4), (1/4, 3/4), (1/5, 4/5); h1 right on
  samples 1 and 3, wrong on sample 2;
  h2 logits (0, 0), (ln 3, 0), (0, ln 4): p2 = (1/2, 1/2), (3/4, 1/4), (1/5, 4/5), so
  KL_1 = 3/4 ln(3/2) + 1/4 ln(1/2), KL_2 = 1/4 ln(1/3) + 3/4 ln 3 = 1/2 ln 3, KL_3 = 0.
"""

from __future__ import annotations

import math

import pytest
import torch

from clarena.cl_algorithms.regularizers import (
    DistillationReg,
    FocalDistillationKLReg,
    FocalDistillationLMReg,
    distillation_reg,
    focal_distillation_kl,
    focal_distillation_lm,
    focal_weight,
)
from clarena.heads import PAD_LOGIT

LM_H1 = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]]
LM_H2 = [[1.0, 0.0, 0.0], [0.0, 1.0, 2.0], [0.0, 1.0, 3.0]]
LM_Y = [0, 2, 2]
LM_D = [0.5, 2.0, 0.5]

LN3, LN4 = math.log(3.0), math.log(4.0)
KL_H1 = [[LN3, 0.0], [0.0, LN3], [0.0, LN4]]
KL_H2 = [[0.0, 0.0], [LN3, 0.0], [0.0, LN4]]
KL_Y = [0, 0, 1]
KL_D = [0.75 * math.log(1.5) + 0.25 * math.log(0.5), 0.5 * LN3, 0.0]


def lm_batch(dtype=torch.float64):
    return (
        torch.tensor(LM_H2, dtype=dtype, requires_grad=True),
        torch.tensor(LM_H1, dtype=dtype),
        torch.tensor(LM_Y),
    )


def kl_batch(dtype=torch.float64, scale=1.0):
    return (
        torch.tensor(KL_H2, dtype=dtype).mul(scale).requires_grad_(),
        torch.tensor(KL_H1, dtype=dtype).mul(scale),
        torch.tensor(KL_Y),
    )


def test_focal_weight_is_alpha_plus_beta_where_h1_is_right():
    _, h1, y = lm_batch()
    assert focal_weight(h1, y, 1.0, 5.0).tolist() == [6.0, 1.0, 6.0]
    assert focal_weight(h1, y, 0.0, 5.0).tolist() == [5.0, 0.0, 5.0]
    assert focal_weight(h1, y, 0.5, 0.0).tolist() == [0.5, 0.5, 0.5]


def test_fd_lm_values():
    h2, h1, y = lm_batch()
    # lambda 2, alpha 1, beta 5: 2 * (6 * 0.5 + 1 * 2 + 6 * 0.5) / 3 = 16 / 3
    value = focal_distillation_lm(h2, h1, y, 2.0, 1.0, 5.0)
    assert value.item() == pytest.approx(16 / 3, rel=1e-12)
    assert FocalDistillationLMReg(2.0, 1.0, 5.0)(h2, h1, y).item() == value.item()
    per_sample = focal_distillation_lm(h2, h1, y, 2.0, 1.0, 5.0, reduction="none")
    assert per_sample.tolist() == pytest.approx([6.0, 4.0, 6.0], rel=1e-12)
    assert focal_distillation_lm(h2, h1, y, 2.0, 1.0, 5.0, "sum").item() == pytest.approx(16.0)
    # gradient: lambda * w_i * (z2 - z1) / B
    (grad,) = torch.autograd.grad(value, h2)
    expected = [[-4.0, 0.0, 0.0], [0.0, 0.0, 4 / 3], [0.0, 4.0, 0.0]]
    torch.testing.assert_close(grad, torch.tensor(expected, dtype=torch.float64))


def test_fd_lm_alpha_zero_acts_only_where_h1_is_right():
    h2, h1, y = lm_batch()
    per_sample = focal_distillation_lm(h2, h1, y, 1.0, 0.0, 5.0, reduction="none")
    assert per_sample.tolist() == pytest.approx([2.5, 0.0, 2.5], rel=1e-12)
    (grad,) = torch.autograd.grad(per_sample.mean(), h2)
    assert (grad[1] == 0).all() and (grad[0] != 0).any() and (grad[2] != 0).any()


def test_fd_lm_beta_zero_is_plain_logit_matching():
    h2, h1, y = lm_batch()
    value = focal_distillation_lm(h2, h1, y, 1.0, 1.0, 0.0)
    assert value.item() == pytest.approx(sum(LM_D) / 3, rel=1e-12)  # = 1
    # DER's MSE averages over the K = 3 classes and has no 1/2: K / 2 times smaller
    assert value.item() == pytest.approx(1.5 * distillation_reg(h2, h1, 1.0, distance="MSE").item())


def test_fd_lm_leaves_out_the_classes_h1_has_no_logit_for():
    h2, h1, y = lm_batch()
    padded_h1 = torch.cat([h1, torch.full((3, 1), PAD_LOGIT, dtype=h1.dtype)], dim=1)
    padded_h2 = torch.cat([h2.detach(), torch.tensor([[5.0], [-3.0], [0.0]])], dim=1)
    value = focal_distillation_lm(padded_h2, padded_h1, y, 2.0, 1.0, 5.0)
    assert value.item() == pytest.approx(16 / 3, rel=1e-12)
    # the bfloat16 rounding of the padding (-9984) is padding too
    value = focal_distillation_lm(padded_h2, padded_h1.bfloat16().double(), y, 2.0, 1.0, 5.0)
    assert value.item() == pytest.approx(16 / 3, rel=1e-12)


def test_fd_kl_values():
    h2, h1, y = kl_batch()
    # lambda 2, alpha 1, beta 5: 2 * (6 KL_1 + KL_2 + 6 * 0) / 3
    expected = 2.0 * (6 * KL_D[0] + KL_D[1]) / 3
    value = focal_distillation_kl(h2, h1, y, 2.0, 1.0, 5.0)
    assert value.item() == pytest.approx(expected, rel=1e-12)
    assert FocalDistillationKLReg(2.0, 1.0, 5.0)(h2, h1, y).item() == value.item()
    per_sample = focal_distillation_kl(h2, h1, y, 2.0, 1.0, 5.0, reduction="none")
    assert per_sample.tolist() == pytest.approx([12 * KL_D[0], 2 * KL_D[1], 0.0], abs=1e-12)
    # gradient of KL(p1 || p2) in z2: (p2 - p1) / T, times lambda w_i / B
    (grad,) = torch.autograd.grad(value, h2)
    expected_grad = [[4.0 * -0.25, 4.0 * 0.25], [2 / 3 * 0.5, 2 / 3 * -0.5], [0.0, 0.0]]
    torch.testing.assert_close(grad, torch.tensor(expected_grad, dtype=torch.float64))


def test_fd_kl_temperature_divides_the_logits():
    h2, h1, y = kl_batch(scale=2.0)
    value = focal_distillation_kl(h2, h1, y, 1.0, 1.0, 5.0, temperature=2.0)
    assert value.item() == pytest.approx((6 * KL_D[0] + KL_D[1]) / 3, rel=1e-12)


def test_fd_kl_alpha_zero_acts_only_where_h1_is_right():
    h2, h1, y = kl_batch()
    per_sample = focal_distillation_kl(h2, h1, y, 1.0, 0.0, 5.0, reduction="none")
    assert per_sample.tolist() == pytest.approx([5 * KL_D[0], 0.0, 0.0], abs=1e-12)
    assert per_sample[1].item() == 0.0  # h1 is wrong on sample 2: no term, although KL_2 > 0


def test_fd_kl_beta_zero_is_plain_distillation():
    h2, h1, y = kl_batch()
    value = focal_distillation_kl(h2, h1, y, 0.7, 1.0, 0.0, temperature=1.5)
    # LwF's cross-entropy minus the teacher's entropy is the KL divergence
    p1 = torch.softmax(h1 / 1.5, dim=1)
    entropy = -(p1 * p1.log()).sum(dim=1).mean()
    lwf = DistillationReg(0.7, 1.5)(h2, h1)
    assert value.item() == pytest.approx((lwf - 0.7 * entropy).item(), rel=1e-12)
    beta_zero = focal_distillation_kl(*kl_batch(), 1.0, 1.0, 0.0)
    assert beta_zero.item() == pytest.approx(sum(KL_D) / 3, rel=1e-12)


@pytest.mark.parametrize("fn", [focal_distillation_kl, focal_distillation_lm])
def test_zero_strength_and_equal_models_give_zero(fn):
    h2, h1, y = lm_batch()
    assert fn(h2, h1, y, 0.0).item() == 0.0
    assert fn(h1.clone().requires_grad_(), h1, y, 3.0).item() == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("cls", [FocalDistillationKLReg, FocalDistillationLMReg])
def test_arguments_are_validated(cls):
    for name in ("lambda_c", "alpha", "beta"):
        for bad in (-1.0, float("nan"), "1"):
            args = {"lambda_c": 1.0, name: bad}
            with pytest.raises(ValueError, match=name):
                cls(**args)
    with pytest.raises(ValueError, match="reduction"):
        cls(1.0, reduction="max")
    if cls is FocalDistillationKLReg:
        with pytest.raises(ValueError, match="temperature"):
            cls(1.0, temperature=0.0)


@pytest.mark.parametrize("fn", [focal_distillation_kl, focal_distillation_lm])
def test_inputs_are_validated(fn):
    h2, h1, y = torch.zeros(4, 3), torch.zeros(4, 3), torch.tensor([0, 1, 2, 0])
    with pytest.raises(ValueError, match="h1_output"):
        fn(h2, h1[:3], y, 1.0)
    with pytest.raises(ValueError, match="target"):
        fn(h2, h1, y.float(), 1.0)
    with pytest.raises(ValueError, match="target"):
        fn(h2, h1, y[:3], 1.0)
    with pytest.raises(ValueError, match="h2_output"):
        fn(torch.zeros(4), torch.zeros(4), y, 1.0)


def test_extreme_logits_stay_finite():
    h2 = torch.tensor([[1.0e4, -1.0e4, 0.0], [-1.0e4, 0.0, 1.0e4]], requires_grad=True)
    h1 = torch.tensor([[-1.0e4, 1.0e4, 0.0], [0.0, 1.0e4, -1.0e4]])
    y = torch.tensor([1, 0])
    value = focal_distillation_kl(h2, h1, y, 1.0, 1.0, 5.0)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(h2.grad).all()


@pytest.mark.parametrize("fn", [focal_distillation_kl, focal_distillation_lm])
def test_no_host_sync_on_meta_tensors(fn):
    # meta tensors have no data: .item(), boolean-mask indexing or CPU-made tensors would fail
    meta = torch.device("meta")
    h2 = torch.empty(8, 5, device=meta, requires_grad=True)
    h1, y = torch.empty(8, 5, device=meta), torch.empty(8, dtype=torch.long, device=meta)
    value = fn(h2, h1, y, 1.0, 0.5, 2.0)
    value.backward()
    assert value.device == meta and h2.grad is not None and h2.grad.device == meta

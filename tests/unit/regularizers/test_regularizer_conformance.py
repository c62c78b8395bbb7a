"""The shared conformance test every regularizer and every loss class goes through.

For each case: the module equals its functional twin and an independent reference written with
Python's `math` from the published formulas; it is zero when the student equals the teacher where
the formula says so; no gradient reaches the teacher (h1), even when the teacher's tensors require
one; the value is deterministic; float64, float32, bfloat16 inputs and bf16 autocast on the CPU give
finite values close to float32; and every function compiles with `torch.compile(fullgraph=True)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from clarena import losses
from clarena.cl_algorithms.regularizers import (
    BCNewErrorReg,
    DistillationReg,
    FocalDistillationKLReg,
    FocalDistillationLMReg,
    LogitDifferenceInhibitionReg,
    ParameterChangeReg,
    StrictImitationReg,
    base_loss,
    distillation_reg,
    focal_distillation_kl,
    focal_distillation_lm,
    logit_difference_inhibition,
    new_error_dissonance,
    parameter_change_reg,
    strict_imitation_dissonance,
)

B, K = 6, 4


# ---- the independent reference, in plain Python ------------------------------------------------
def _log_softmax(row: list[float], t: float = 1.0) -> list[float]:
    z = [v / t for v in row]
    top = max(z)
    lse = top + math.log(sum(math.exp(v - top) for v in z))
    return [v - lse for v in z]


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def ref_bc(h2, h1, y, loss, lam, strict=False, t=1.0, alpha=0.0, pivot=0.5):
    """Per-sample (base, weighted dissonance) of the BC objective, from the formulas."""
    out = []
    for z2, z1, label in zip(h2, h1, y):
        if loss == "binary_cross_entropy":
            q2 = _sigmoid(z2)
            ell = -(label * math.log(q2) + (1 - label) * math.log(1 - q2))
            in_support = (1.0 if _sigmoid(z1) >= pivot else 0.0) == label
            q1, q2t = _sigmoid(z1 / t), _sigmoid(z2 / t)
            d = -(q1 * math.log(q2t) + (1 - q1) * math.log(1 - q2t)) if strict else ell
        else:
            ell = -_log_softmax(z2)[label]
            in_support = max(range(len(z1)), key=z1.__getitem__) == label
            lp1, lp2 = _log_softmax(z1, t), _log_softmax(z2, t)
            if not strict:
                d = ell
            elif loss == "kl_div":
                d = sum(math.exp(a) * (a - b) for a, b in zip(lp1, lp2))
            else:
                d = -sum(math.exp(a) * b for a, b in zip(lp1, lp2))
        weight = 1.0 if in_support else (alpha if strict else 0.0)
        out.append((ell, lam * weight * d))
    return out


def ref_distillation(student, teacher, factor, t, distance):
    if distance == "MSE":
        diffs = [(a - b) ** 2 for s, q in zip(student, teacher) for a, b in zip(s, q)]
        return factor * sum(diffs) / len(diffs)
    rows = []
    for s, q in zip(student, teacher):
        lp, lq = _log_softmax(s, t), _log_softmax(q, t)
        rows.append(-sum(math.exp(b) * a for a, b in zip(lp, lq)))
    return factor * sum(rows) / len(rows)


def ref_focal(h2, h1, y, lam, alpha, beta, t, distance):
    """Focal distillation (Yan et al. 2021): mean of lam * (alpha + beta [h1 right]) * d_i."""
    rows = []
    for z2, z1, label in zip(h2, h1, y):
        right = max(range(len(z1)), key=z1.__getitem__) == label
        if distance == "lm":
            d = 0.5 * sum((a - b) ** 2 for a, b in zip(z2, z1))
        else:
            lp1, lp2 = _log_softmax(z1, t), _log_softmax(z2, t)
            d = sum(math.exp(a) * (a - b) for a, b in zip(lp1, lp2))
        rows.append(lam * (alpha + (beta if right else 0.0)) * d)
    return sum(rows) / len(rows)


def ref_ldi(student, reference, lam, k, margin, p):
    """ELODI's LDI (Zhao et al. 2022): mean over the batch of lam * sum over the top-k classes of
    either model of 1[|d| > margin] |d|^p / p."""
    rows = []
    for s, r in zip(student, reference):
        top = set(sorted(range(len(s)), key=s.__getitem__)[-k:])
        top |= set(sorted(range(len(r)), key=r.__getitem__)[-k:])
        d = [abs(s[c] - r[c]) for c in top]
        rows.append(lam * sum(v**p / p for v in d if v > margin))
    return sum(rows) / len(rows)


# ---- the cases --------------------------------------------------------------------------------
@dataclass
class Case:
    """A regularizer over (student, teacher, target) tensors."""

    name: str
    module: nn.Module
    functional: Callable[..., torch.Tensor]
    reference: Callable[[list, list, list], float]
    binary: bool = False
    zero_when_equal: bool = False

    def inputs(self, seed: int, dtype=torch.float64):
        g = torch.Generator().manual_seed(seed)
        shape = (B,) if self.binary else (B, K)
        student = (2 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
        teacher = (2 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
        if self.binary:
            target = torch.randint(0, 2, (B,), generator=g).to(torch.float64)
        else:
            target = torch.randint(0, K, (B,), generator=g)
        return student.requires_grad_(), teacher.requires_grad_(), target


def _bc_cases() -> list[Case]:
    cases = []
    for loss in ("nll", "cross_entropy", "kl_div", "binary_cross_entropy"):
        binary = loss == "binary_cross_entropy"

        def new_ref(s, t, y, loss=loss):
            return sum(d for _, d in ref_bc(s, t, y, loss, 0.7)) / B

        def strict_ref(s, t, y, loss=loss):
            return sum(d for _, d in ref_bc(s, t, y, loss, 0.7, True, 1.5, 0.2)) / B

        cases.append(
            Case(
                f"new_error[{loss}]",
                BCNewErrorReg(loss, 0.7),
                lambda s, t, y, loss=loss: new_error_dissonance(s, t, y, loss, 0.7),
                new_ref,
                binary,
            )
        )
        cases.append(
            Case(
                f"strict_imitation[{loss}]",
                StrictImitationReg(loss, 0.7, temperature=1.5, focal_alpha=0.2),
                lambda s, t, y, loss=loss: strict_imitation_dissonance(
                    s, t, y, loss, 0.7, 1.5, 0.2
                ),
                strict_ref,
                binary,
                zero_when_equal=loss == "kl_div",
            )
        )
    return cases


CASES = [
    *_bc_cases(),
    Case(
        "distillation[cross_entropy]",
        DistillationReg(0.8, 2.0, "cross_entropy"),
        lambda s, t, y: distillation_reg(s, t, 0.8, 2.0, "cross_entropy"),
        lambda s, t, y: ref_distillation(s, t, 0.8, 2.0, "cross_entropy"),
    ),
    Case(
        "distillation[MSE]",
        DistillationReg(0.8, 2.0, "MSE"),
        lambda s, t, y: distillation_reg(s, t, 0.8, 2.0, "MSE"),
        lambda s, t, y: ref_distillation(s, t, 0.8, 2.0, "MSE"),
        zero_when_equal=True,
    ),
    Case(
        "focal_distillation[kl]",
        FocalDistillationKLReg(0.7, 0.3, 2.0, 1.5),
        lambda s, t, y: focal_distillation_kl(s, t, y, 0.7, 0.3, 2.0, 1.5),
        lambda s, t, y: ref_focal(s, t, y, 0.7, 0.3, 2.0, 1.5, "kl"),
        zero_when_equal=True,
    ),
    Case(
        "focal_distillation[lm]",
        FocalDistillationLMReg(0.7, 0.3, 2.0),
        lambda s, t, y: focal_distillation_lm(s, t, y, 0.7, 0.3, 2.0),
        lambda s, t, y: ref_focal(s, t, y, 0.7, 0.3, 2.0, 1.0, "lm"),
        zero_when_equal=True,
    ),
    Case(
        "logit_difference_inhibition[p=2]",
        LogitDifferenceInhibitionReg(0.7, top_k=2, margin=0.3),
        lambda s, t, y: logit_difference_inhibition(s, t, 0.7, 2, 0.3),
        lambda s, t, y: ref_ldi(s, t, 0.7, 2, 0.3, 2.0),
        zero_when_equal=True,
    ),
    Case(
        "logit_difference_inhibition[p=1]",
        LogitDifferenceInhibitionReg(0.7, top_k=3, p=1.0),
        lambda s, t, y: logit_difference_inhibition(s, t, 0.7, 3, 0.0, 1.0),
        lambda s, t, y: ref_ldi(s, t, 0.7, 3, 0.0, 1.0),
        zero_when_equal=True,
    ),
    # parameter change: student = params, teacher = anchors, target = importances (> 0)
    Case(
        "parameter_change[EWC]",
        ParameterChangeReg(0.3),
        lambda s, t, y: parameter_change_reg({"p": s}, {"p": t}, 0.3, {"p": y}),
        lambda s, t, y: (
            0.3
            * sum(w * (a - b) ** 2 for rs, rt, rw in zip(s, t, y) for a, b, w in zip(rs, rt, rw))
        ),
        zero_when_equal=True,
    ),
]


def _call(case: Case, fn, student, teacher, target):
    """Call a module or a functional twin; parameter-change modules take name -> tensor maps."""
    if fn is case.module and case.name.startswith("parameter_change"):
        return fn({"p": student}, {"p": teacher}, {"p": target})
    if fn is case.module and case.name.startswith(("distillation", "logit_difference")):
        return fn(student, teacher)
    return fn(student, teacher, target)


def _inputs(case: Case, seed: int, dtype=torch.float64):
    student, teacher, target = case.inputs(seed, dtype)
    if case.name.startswith("parameter_change"):
        # importances: positive weights
        g = torch.Generator().manual_seed(seed + 1)
        target = (torch.randn(student.shape, generator=g).abs() + 0.5).to(dtype)
    return student, teacher, target


IDS = [case.name for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_module_equals_functional_equals_reference(case):
    for seed in range(3):
        student, teacher, target = _inputs(case, seed)
        module_value = _call(case, case.module, student, teacher, target)
        functional_value = _call(case, case.functional, student, teacher, target)
        torch.testing.assert_close(module_value, functional_value, rtol=0, atol=0)
        expected = case.reference(student.tolist(), teacher.tolist(), target.tolist())
        assert module_value.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.zero_when_equal], ids=lambda c: c.name)
def test_zero_when_student_equals_teacher(case):
    student, _, target = _inputs(case, 0)
    value = _call(case, case.module, student, student.detach().clone(), target)
    assert value.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_no_gradient_reaches_the_teacher(case):
    student, teacher, target = _inputs(case, 1)
    _call(case, case.module, student, teacher, target).backward()
    assert teacher.grad is None
    assert student.grad is not None and torch.isfinite(student.grad).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_deterministic(case):
    values = []
    for _ in range(2):
        student, teacher, target = _inputs(case, 7)
        value = _call(case, case.module, student, teacher, target)
        value.backward()
        values.append((value.detach(), student.grad))
    assert torch.equal(values[0][0], values[1][0]) and torch.equal(values[0][1], values[1][1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dtypes_and_cpu_autocast(case, dtype):
    student, teacher, target = _inputs(case, 2)
    exact = _call(case, case.module, student, teacher, target).item()
    low = _inputs(case, 2, dtype)
    value = _call(case, case.module, *low)
    assert torch.isfinite(value) and value.item() == pytest.approx(exact, rel=0.05, abs=0.02)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = _call(case, case.module, *_inputs(case, 2, torch.float32))
    assert torch.isfinite(value) and value.item() == pytest.approx(exact, rel=0.05, abs=0.02)


# ---- the loss classes ---------------------------------------------------------------------------
LOSS_CLASSES = {
    "BCNLLLoss": ("nll", False),
    "BCCrossEntropyLoss": ("cross_entropy", False),
    "BCKLDivergenceLoss": ("kl_div", False),
    "BCBinaryCrossEntropyLoss": ("binary_cross_entropy", False),
    "StrictImitationNLLLoss": ("nll", True),
    "StrictImitationCrossEntropyLoss": ("cross_entropy", True),
    "StrictImitationKLDivergenceLoss": ("kl_div", True),
    "StrictImitationBinaryCrossEntropyLoss": ("binary_cross_entropy", True),
}


def make_models(name: str, seed: int, dtype=torch.float64) -> tuple[Any, ...]:
    torch.manual_seed(seed)
    binary = "Binary" in name
    out = 1 if binary else K
    h1 = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, out)).to(dtype)
    h2 = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, out)).to(dtype)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 5, generator=g).to(dtype)
    y = (
        torch.randint(0, 2, (B,), generator=g).double()
        if binary
        else torch.randint(0, K, (B,), generator=g)
    )
    return h1, h2, x, y


def make_loss(name: str, h1, h2):
    _, strict = LOSS_CLASSES[name]
    options = {"temperature": 1.5, "focal_alpha": 0.2} if strict else {}
    return getattr(losses, name)(h1, h2, 0.7, **options)


@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_loss_class_equals_functional_and_reference(name):
    loss, strict = LOSS_CLASSES[name]
    h1, h2, x, y = make_models(name, 0)
    value = make_loss(name, h1, h2)(x, y)
    z2, z1 = h2(x), h1(x).detach()
    if strict:
        dissonance = strict_imitation_dissonance(z2, z1, y, loss, 0.7, 1.5, 0.2)
    else:
        dissonance = new_error_dissonance(z2, z1, y, loss, 0.7)
    torch.testing.assert_close(value, base_loss(z2, y, loss).mean() + dissonance)
    flat = (lambda t: t[:, 0]) if "Binary" in name else (lambda t: t)
    per = ref_bc(flat(z2).tolist(), flat(z1).tolist(), y.tolist(), loss, 0.7, strict, 1.5, 0.2)
    assert value.item() == pytest.approx(sum(a + b for a, b in per) / B, rel=1e-10)


@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_loss_class_h1_gets_no_gradient_and_is_deterministic(name):
    values = []
    for _ in range(2):
        h1, h2, x, y = make_models(name, 3)  # h1's parameters require grad on purpose
        value = make_loss(name, h1, h2)(x, y)
        value.backward()
        assert all(p.grad is None for p in h1.parameters())
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in h2.parameters())
        values.append(value.detach())
    assert torch.equal(values[0], values[1])


@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_loss_class_bf16_autocast_close_to_float32(name):
    h1, h2, x, y = make_models(name, 4, torch.float32)
    exact = make_loss(name, h1, h2)(x, y).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = make_loss(name, h1, h2)(x, y)
    value.backward()
    assert torch.isfinite(value) and value.item() == pytest.approx(exact, rel=0.05, abs=0.02)
    assert all(torch.isfinite(p.grad).all() for p in h2.parameters())


# ---- compilation ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_functional_compiles_with_fullgraph(case):
    torch._dynamo.reset()
    student, teacher, target = _inputs(case, 5, torch.float32)
    compiled = torch.compile(case.functional, fullgraph=True, backend="aot_eager")
    value = compiled(student, teacher, target)
    value.backward()
    eager = case.functional(student, teacher, target)
    torch.testing.assert_close(value, eager)
    assert teacher.grad is None and torch.isfinite(student.grad).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LOSS_CLASSES))
def test_loss_class_compiles_with_fullgraph(name):
    torch._dynamo.reset()
    h1, h2, x, y = make_models(name, 6, torch.float32)
    h1.train()  # the loss switches it to eval inside the compiled graph and back
    loss_fn = make_loss(name, h1, h2)
    eager = loss_fn(x, y)
    value = torch.compile(loss_fn, fullgraph=True, backend="aot_eager")(x, y)
    value.backward()
    torch.testing.assert_close(value, eager)
    assert h1.training and all(p.grad is None for p in h1.parameters())


@pytest.mark.slow
def test_default_inductor_backend_compiles_and_matches():
    # one case with the default backend (code generation included), to keep CI time small; the
    # aot_eager tests above cover tracing of every function
    torch._dynamo.reset()
    h1, h2, x, y = make_models("StrictImitationKLDivergenceLoss", 8, torch.float32)
    loss_fn = make_loss("StrictImitationKLDivergenceLoss", h1, h2)
    value = torch.compile(loss_fn, fullgraph=True)(x, y)
    value.backward()
    torch.testing.assert_close(value, loss_fn(x, y))
    assert all(p.grad is None for p in h1.parameters())

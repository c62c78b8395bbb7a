"""Synaptic Intelligence: the path integral on a hand-computed quadratic, the penalty, growing
heads, and a checkpoint taken inside a task."""

from __future__ import annotations

import functools

import pytest
import torch
from cl_synthetic_stream import SyntheticStream, build_algorithm
from torch import nn

from clarena.cl_algorithms import SI
from clarena.cl_algorithms.regularizers.importance import path_integral_step, si_importance
from clarena.heads import make_heads


class Scale(nn.Module):
    """A backbone with exactly two parameters: `x ↦ x · θ` on 2-dimensional inputs."""

    output_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.ones(2, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.theta


class TwoClasses:
    def output_dim(self, task_id: int) -> int:
        return 2


def _quadratic_step(si: SI, optimizer: torch.optim.Optimizer, step: int) -> None:
    """One optimizer step on L(θ) = ½ (1·θ₁² + 2·θ₂²), through SI's `optimizer_step`."""
    a = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = 0.5 * (a * si.backbone.theta**2).sum()
        loss.backward()
        return loss

    si.optimizer_step(0, step, optimizer, closure)


def _loss_step(si: SI, optimizer: torch.optim.Optimizer, step: int, batch) -> None:
    """One optimizer step on the algorithm's loss of `batch`, through SI's `optimizer_step`."""

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = sum(si.loss_terms(batch).values())
        loss.backward()
        return loss

    si.optimizer_step(0, step, optimizer, closure)


def test_importance_is_the_path_integral_on_a_two_parameter_quadratic() -> None:
    """θ₀ = (1, 1), SGD lr 0.1, g = (θ₁, 2θ₂): θ₁ 1 → 0.9 → 0.81, θ₂ 1 → 0.8 → 0.64.
    ω₁ = 1·0.1 + 0.9·0.09 = 0.181, ω₂ = 2·0.2 + 1.6·0.16 = 0.656; Δ = (−0.19, −0.36);
    Ω = ω / (Δ² + 0.1) = (0.181 / 0.1361, 0.656 / 0.2296 = 20/7)."""
    heads = make_heads("DIL", 2).to(torch.float64)
    si = SI(Scale(), heads, functools.partial(torch.optim.SGD, lr=0.1), "DIL")
    si.on_task_start(1, TwoClasses())
    si.heads.to(torch.float64)
    optimizer = torch.optim.SGD(si.trainable_parameters(), lr=0.1)
    for step in range(2):
        _quadratic_step(si, optimizer, step)
    expected_path = torch.tensor([0.181, 0.656], dtype=torch.float64)
    torch.testing.assert_close(si.collector.path_integral["backbone.theta"], expected_path)
    # the head got no gradient: nothing is credited to it
    assert not si.collector.path_integral["heads.linear.weight"].any()
    si.on_task_end(1, TwoClasses())
    expected = torch.tensor([0.181 / 0.1361, 20 / 7], dtype=torch.float64)
    torch.testing.assert_close(si.collector.importance["backbone.theta"], expected)
    torch.testing.assert_close(
        si.collector.anchors["backbone.theta"], torch.tensor([0.81, 0.64]).double()
    )
    assert not si.collector.importance["heads.linear.weight"].any()
    # the penalty c · Σ Ω (θ − θ*)²: move θ₁ by 1 → 10 · Ω₁
    si.on_task_start(2, TwoClasses())
    with torch.no_grad():
        si.backbone.theta += torch.tensor([1.0, 0.0], dtype=torch.float64)
    batch = (
        torch.ones(3, 2, dtype=torch.float64),
        torch.tensor([0, 1, 0]),
        torch.full((3,), 2, dtype=torch.long),
    )
    assert si.loss_terms(batch)["si"].item() == pytest.approx(10 * 0.181 / 0.1361, rel=1e-12)


def test_path_integral_and_importance_helpers() -> None:
    omega = {"w": torch.zeros(3)}
    grads = {"w": torch.tensor([2.0, float("inf"), -1.0]), "unused": None}
    deltas = {"w": torch.tensor([-0.5, 0.0, -0.25]), "unused": torch.zeros(1)}
    path_integral_step(omega, grads, deltas)
    # a parameter that did not move (a skipped mixed-precision step) adds exactly 0, not nan
    assert omega["w"].tolist() == [1.0, 0.0, -0.25]
    importance = si_importance(omega, {"w": torch.tensor([1.0, 0.0, 0.5])}, damping=1.0)
    torch.testing.assert_close(importance["w"], torch.tensor([0.5, 0.0, -0.25 / 1.25]))
    with pytest.raises(ValueError, match="damping must be finite and >= 0"):
        si_importance(omega, {"w": torch.zeros(3)}, damping=-1.0)
    with pytest.raises(ValueError, match="total_change has no entry 'w'"):
        si_importance(omega, {}, damping=0.1)
    with pytest.raises(ValueError, match="damping must be finite and >= 0"):
        build_algorithm("si", "DIL", damping=float("nan"))


def test_a_grown_head_keeps_its_new_classes_unpenalised() -> None:
    torch.manual_seed(0)
    si = build_algorithm("si", "CIL")
    stream = SyntheticStream("CIL")
    x, y, t = stream.train_sets[0].tensors
    stream.setup_task(1)
    si.on_task_start(1, stream)
    optimizer = torch.optim.SGD(si.trainable_parameters(), lr=0.1)
    for step in range(3):
        _loss_step(si, optimizer, step, (x, y, t))
    si.on_task_end(1, stream)
    stream.setup_task(2)
    si.on_task_start(2, stream)
    weight = si.heads.linear.weight
    assert si.collector.importance["heads.linear.weight"].shape == weight.shape == (4, 16)
    assert not si.collector.importance["heads.linear.weight"][2:].any()
    assert torch.equal(si.collector.anchors["heads.linear.weight"][2:], weight[2:].detach())
    with torch.no_grad():
        si.backbone.net[1].weight.add_(0.1)
    before = si.loss_terms((x, y, t))["si"]
    assert before > 0
    with torch.no_grad():
        weight[2:] += 5.0  # the new classes move: no penalty
    assert torch.equal(si.loss_terms((x, y, t))["si"], before)


def test_a_checkpoint_inside_a_task_continues_the_path_integral_exactly(tmp_path) -> None:
    torch.manual_seed(0)
    stream = SyntheticStream("DIL")
    x, y, t = stream.train_sets[0].tensors
    first = build_algorithm("si", "DIL")
    stream.setup_task(1)
    first.on_task_start(1, stream)

    def steps(si: SI, start: int, stop: int, optimizer: torch.optim.Optimizer) -> None:
        for step in range(start, stop):
            rows = slice(4 * step, 4 * step + 4)
            _loss_step(si, optimizer, step, (x[rows], y[rows], t[rows]))

    steps(first, 0, 2, torch.optim.SGD(first.trainable_parameters(), lr=0.1))
    torch.save(first.cl_state_dict(), tmp_path / "mid.pt")
    resumed = build_algorithm("si", "DIL")
    resumed.load_cl_state_dict(torch.load(tmp_path / "mid.pt", weights_only=True))
    for si in (first, resumed):
        steps(si, 2, 5, torch.optim.SGD(si.trainable_parameters(), lr=0.1))
        si.on_task_end(1, stream)
    for key in ("si_importance", "si_anchors"):
        a, b = first.collector.state_dict()[key], resumed.collector.state_dict()[key]
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    assert first.collector.importance["backbone.net.1.weight"].abs().sum() > 0

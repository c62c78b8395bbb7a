"""Memory Aware Synapses: the importance on a hand-computed linear model, per sample, the penalty,
and the accumulation over tasks."""

from __future__ import annotations

import functools

import pytest
import torch
from cl_synthetic_stream import SyntheticStream, build_algorithm
from torch import nn

from clarena.cl_algorithms import MAS
from clarena.heads import make_heads


class Inputs(nn.Module):
    """A backbone without parameters: the features are the 2-dimensional inputs."""

    output_dim = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Loader:
    """Two batches `(x, y, task_ids)`: samples (1, 0), (0, 1), then (−2, 0)."""

    def __iter__(self):
        x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-2.0, 0.0]], dtype=torch.float64)
        y, t = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
        return iter([(x[:2], y[:2], t[:2]), (x[2:], y[2:], t[2:])])


class TwoClasses:
    def output_dim(self, task_id: int) -> int:
        return 2

    def train_dataloader(self) -> Loader:
        return Loader()


def _linear_mas(**kwargs) -> MAS:
    mas = MAS(
        Inputs(), make_heads("DIL", 2), functools.partial(torch.optim.SGD, lr=0.1), "DIL", **kwargs
    )
    mas.on_task_start(1, TwoClasses())
    mas.heads.to(torch.float64)
    with torch.no_grad():
        mas.heads.linear.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
        mas.heads.linear.bias.copy_(torch.tensor([0.0, -1.0]))
    return mas


def test_importance_on_a_linear_model_is_the_hand_computed_mean_absolute_gradient() -> None:
    """f(x) = Wx + b, W = [[1, 2], [0, −1]], b = (0, −1); ∂‖f‖²/∂W = 2 f xᵀ, ∂‖f‖²/∂b = 2 f.
    x = (1, 0): f = (1, −1), ∂W = [[2, 0], [−2, 0]], ∂b = (2, −2);
    x = (0, 1): f = (2, −2), ∂W = [[0, 4], [0, −4]], ∂b = (4, −4);
    x = (−2, 0): f = (−2, −1), ∂W = [[8, 0], [4, 0]], ∂b = (−4, −2).
    Mean of the absolute values: W [[10, 4], [6, 4]] / 3, b (10, 8) / 3 (the absolute value of
    the batch's mean gradient would give b (2, 8) / 3: the gradient is taken per sample)."""
    mas = _linear_mas()
    importance = mas.collector.compute(Loader())
    assert set(importance) == {"heads.linear.weight", "heads.linear.bias"}
    weight = torch.tensor([[10.0, 4.0], [6.0, 4.0]], dtype=torch.float64) / 3
    torch.testing.assert_close(importance["heads.linear.weight"], weight)
    torch.testing.assert_close(
        importance["heads.linear.bias"], torch.tensor([10.0, 8.0]).double() / 3
    )
    # at most 2 samples: the first batch only
    first_two = _linear_mas(importance_num_samples=2).collector.compute(Loader())
    torch.testing.assert_close(first_two["heads.linear.bias"], torch.tensor([3.0, 3.0]).double())


def test_penalty_and_accumulation_over_tasks() -> None:
    mas = _linear_mas(mas_factor=0.5)
    batch = next(iter(Loader()))
    assert mas.loss_terms(batch)["mas"].item() == 0.0
    mas.on_task_end(1, TwoClasses())
    omega_b = torch.tensor([10.0, 8.0], dtype=torch.float64) / 3
    torch.testing.assert_close(mas.collector.importance["heads.linear.bias"], omega_b)
    mas.on_task_start(2, TwoClasses())
    with torch.no_grad():
        mas.heads.linear.bias += torch.tensor([2.0, 1.0], dtype=torch.float64)
    # λ Σ Ω Δ² = 0.5 · (10/3 · 4 + 8/3 · 1) = 8
    assert mas.loss_terms(batch)["mas"].item() == pytest.approx(8.0, rel=1e-12)
    with torch.no_grad():
        mas.heads.linear.bias -= torch.tensor([2.0, 1.0], dtype=torch.float64)
    mas.on_task_end(2, TwoClasses())  # same model, same data: the importance doubles
    torch.testing.assert_close(mas.collector.importance["heads.linear.bias"], 2 * omega_b)


def test_importance_matches_one_backward_per_sample_with_task_heads() -> None:
    torch.manual_seed(0)
    mas = build_algorithm("mas", "TIL", importance_chunk_size=5)
    stream = SyntheticStream("TIL")
    for task in (1, 2):
        stream.setup_task(task)
        mas.on_task_start(task, stream)
    importance = mas.collector.compute(stream.train_dataloader())
    params = mas.collector.protected_parameters()
    assert set(importance) == set(params) == {"backbone.net.1.weight", "backbone.net.1.bias"}
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    x, _, t = stream.train_sets[1].tensors
    for xi, ti in zip(x, t):
        mas.zero_grad()
        mas(xi[None], ti[None]).pow(2).sum().backward()  # task 2's head
        for n, p in params.items():
            expected[n] += p.grad.abs()
    for n in importance:
        torch.testing.assert_close(importance[n], expected[n] / len(x), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="importance_chunk_size must be positive"):
        build_algorithm("mas", "TIL", importance_chunk_size=0)


def test_importance_and_anchors_survive_a_weights_only_checkpoint(tmp_path) -> None:
    torch.manual_seed(0)
    mas = build_algorithm("mas", "CIL")
    stream = SyntheticStream("CIL", num_tasks=3)
    for task in (1, 2):
        stream.setup_task(task)
        mas.on_task_start(task, stream)
        mas.on_task_end(task, stream)
    torch.save(mas.cl_state_dict(), tmp_path / "state.pt")
    restored = build_algorithm("mas", "CIL")
    restored.load_cl_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for key in ("mas_importance", "mas_anchors"):
        a, b = mas.collector.state_dict()[key], restored.collector.state_dict()[key]
        assert a.keys() == b.keys() == set(mas.collector.protected_parameters())
        assert all(torch.equal(a[n], b[n]) for n in a)
    assert mas.collector.importance["heads.linear.weight"].shape == (4, 16)

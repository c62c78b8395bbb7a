"""A-GEM: the projection (hand-computed), the projected gradient of a training step, the memory of
100-per-class-style budgets, and its checkpoint."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cl_synthetic_stream import SyntheticStream, build_algorithm
from hydra.utils import instantiate
from omegaconf import OmegaConf

import clarena.configs
from clarena.backbones import MLP
from clarena.cl_algorithms import AGEM
from clarena.cl_algorithms.agem import project_gradient
from clarena.heads import make_heads

CONFIGS = Path(clarena.configs.__file__).parent / "cl_algorithm"


def test_projection_by_hand() -> None:
    reference = torch.tensor([0.0, 2.0, 0.0])
    # g·g_ref = −2 < 0: g − (−2 / 4) g_ref = (1, 0, 2)
    projected = project_gradient(torch.tensor([1.0, -1.0, 2.0]), reference)
    assert projected.tolist() == [1.0, 0.0, 2.0]
    assert (projected * reference).sum().item() == 0.0
    # g·g_ref = 2 ≥ 0: unchanged
    assert project_gradient(torch.tensor([1.0, 1.0, 0.0]), reference).tolist() == [1.0, 1.0, 0.0]
    # ε enters the denominator: g − (−2 / (4 + 1)) g_ref = (1, −0.2, 2)
    with_eps = project_gradient(torch.tensor([1.0, -1.0, 2.0]), reference, eps=1.0)
    torch.testing.assert_close(with_eps, torch.tensor([1.0, -0.2, 2.0]))


def test_projection_never_points_against_the_reference() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        grad = torch.randn(50, generator=g, dtype=torch.float64)
        reference = torch.randn(50, generator=g, dtype=torch.float64)
        projected = project_gradient(grad, reference)
        dot = (grad * reference).sum()
        assert (projected * reference).sum() >= -1e-12
        if dot < 0:  # the closest vector to g on the half-space: g − projected ∥ g_ref
            assert abs((projected * reference).sum()) < 1e-12
            residual = grad - projected
            torch.testing.assert_close(residual, (dot / reference.pow(2).sum()) * reference)
        else:
            assert torch.equal(projected, grad)


def _fill_memory(scenario: str, tasks=(1,), **kwargs) -> tuple[AGEM, SyntheticStream]:
    torch.manual_seed(0)
    agem = build_algorithm("agem", scenario, **kwargs)
    stream = SyntheticStream(scenario, num_tasks=3)
    for task in tasks:
        stream.setup_task(task)
        agem.on_task_start(task, stream)
        agem.on_task_end(task, stream)
    return agem, stream


def _flat(pairs) -> torch.Tensor:
    """The gradients of `(gradient or None, parameter)` pairs as one vector."""
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in pairs])


@pytest.mark.parametrize("scenario", ["TIL", "CIL", "DIL"])
def test_a_training_step_gets_the_projected_gradient(scenario: str) -> None:
    agem, stream = _fill_memory(scenario, budget_per_class=5)
    stream.setup_task(2)
    agem.on_task_start(2, stream)
    params = agem.trainable_parameters()
    violated = 0
    for x, y, t in stream.train_dataloader():
        state = agem.generator.get_state()
        agem.zero_grad()
        loss = sum(agem.loss_terms((x, y, t)).values())
        loss.backward()
        current = _flat([(p.grad, p) for p in params]).clone()
        agem.on_before_optimizer_step(torch.optim.SGD(params, lr=0.1))
        applied = _flat([(p.grad, p) for p in params])
        # the reference gradient, recomputed on the same replayed batch
        agem.generator.set_state(state)
        replay = agem.sample_memory(x.shape[0])
        replay_ce = F.cross_entropy(agem(replay["x"], replay["task_ids"]), replay["y"])
        reference = _flat(zip(torch.autograd.grad(replay_ce, params, allow_unused=True), params))
        torch.testing.assert_close(applied, project_gradient(current, reference, agem.eps))
        assert (applied * reference).sum() >= -1e-6 * reference.norm() * current.norm()
        violated += int((current * reference).sum() < 0)
    assert violated > 0  # the case that matters happened


def test_memory_holds_a_random_budget_of_every_class_of_the_past_tasks() -> None:
    agem, stream = _fill_memory("CIL", tasks=(1, 2), budget_per_class=3)
    memory = agem.memory
    assert memory["y"].tolist().count(0) == 3 and sorted(set(memory["y"].tolist())) == [0, 1, 2, 3]
    assert memory["task_ids"].tolist() == [1] * 6 + [2] * 6
    for x, y, t in zip(memory["x"], memory["y"], memory["task_ids"]):
        xs, ys, _ = stream.train_sets[int(t) - 1].tensors
        matches = (xs == x).flatten(1).all(1)
        assert matches.sum() == 1 and ys[matches].item() == y  # a real, unaltered training sample
    assert len({tuple(x.flatten().tolist()) for x in memory["x"]}) == 12  # no duplicates
    # TIL replays ⌈B / past tasks⌉ of each past task, like the reference's per-context batches
    til, _ = _fill_memory("TIL", tasks=(1, 2), budget_per_class=3)
    assert til.sample_memory(5)["task_ids"].tolist().count(1) == 3
    assert til.sample_memory(5)["task_ids"].tolist().count(2) == 3
    with pytest.raises(ValueError, match="budget_per_class and replay_batch_size must be positive"):
        build_algorithm("agem", "CIL", budget_per_class=0)
    with pytest.raises(ValueError, match="the memory is empty until the first task ends"):
        build_algorithm("agem", "CIL").sample_memory(4)


def test_the_config_seeds_the_memory_from_the_run_seed() -> None:
    cfg = OmegaConf.create({"seed": 7, "item": OmegaConf.load(CONFIGS / "agem.yaml")}).item
    backbone = MLP(input_shape=(1, 4, 4), hidden_dims=(8,))
    agem = instantiate(
        cfg,
        backbone=backbone,
        heads=make_heads("CIL", backbone.output_dim),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        scenario="CIL",
    )
    assert agem.budget_per_class == 100 and agem.eps == 1e-7
    assert torch.equal(agem.generator.get_state(), torch.Generator().manual_seed(7).get_state())


def test_memory_and_generator_survive_a_weights_only_checkpoint(tmp_path) -> None:
    agem, _ = _fill_memory("DIL", tasks=(1, 2), budget_per_class=4)
    torch.save(agem.cl_state_dict(), tmp_path / "state.pt")
    restored = build_algorithm("agem", "DIL", budget_per_class=4)
    restored.load_cl_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    a, b = agem.extra_cl_state(), restored.extra_cl_state()
    assert all(
        torch.equal(a["agem_memory"][k], b["agem_memory"][k]) for k in ("x", "y", "task_ids")
    )
    assert torch.equal(a["agem_generator"], b["agem_generator"])
    for _ in range(3):
        first, second = agem.sample_memory(6), restored.sample_memory(6)
        assert all(torch.equal(first[k], second[k]) for k in first)

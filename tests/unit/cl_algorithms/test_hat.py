"""HAT: gradient compensation, the capacity regularizer, the annealed scale and the masks on
hand-made tensors; weights owned by earlier tasks do not move; split_digits; refusals; CL state."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cl_synthetic_stream import INPUT_SHAPE, SyntheticStream, build_algorithm, run_tasks

from clarena.backbones import CNN, MLP
from clarena.cl_algorithms import HAT
from clarena.cl_algorithms.hat import annealed_s, capacity_regularizer
from clarena.core.errors import ConfigError
from clarena.heads import make_heads
from clarena.run.config import compose_config, validate_config
from clarena.run.spec import RunSpec
from clarena.run.task_loop import run_experiment


def _hat(hidden: tuple[int, ...] = (4, 3), **kwargs) -> HAT:
    return build_algorithm("hat", "TIL", hidden=hidden, **kwargs)


# ---------------------------------------------------------------------------- gradients
def test_masked_gradients_are_zero_on_weights_owned_by_earlier_tasks() -> None:
    torch.manual_seed(0)
    mlp = MLP(INPUT_SHAPE, (4, 3), activation="tanh")  # no dead unit: every raw gradient ≠ 0
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    hat = HAT(mlp, make_heads("TIL", mlp.output_dim), optimizer, "TIL")
    stream = SyntheticStream("TIL")
    stream.setup_task(1)
    hat.on_task_start(1, stream)
    # hand-made cumulative mask: layer 1 units (1, 0, 1, .25), layer 2 units (0, 1, 1)
    a1, a2 = torch.tensor([1.0, 0.0, 1.0, 0.25]), torch.tensor([0.0, 1.0, 1.0])
    hat.cumulative_mask = torch.cat([a1, a2])
    with torch.no_grad():
        hat.embeddings["1"].fill_(6.0)  # the current task's mask is 1 everywhere
    batch = next(iter(stream.train_dataloader()))
    sum(hat.loss_terms(batch).values()).backward()
    first, second = hat.linears
    raw = [p.grad.clone() for p in (first.weight, first.bias, second.weight, second.bias)]
    assert all((g != 0).all() for g in raw)  # so every zero below is the compensation's
    hat.on_before_optimizer_step(torch.optim.SGD(hat.trainable_parameters(), lr=0.1))
    # layer 1 (the input counts as owned): row i scaled by 1 - a1_i
    expected_w1 = raw[0] * torch.tensor([0.0, 1.0, 0.0, 0.75])[:, None]
    # layer 2: w_ij scaled by 1 - min(a2_i, a1_j)
    factor_w2 = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.75], [0.0, 1.0, 0.0, 0.75]])
    assert torch.equal(first.weight.grad, expected_w1)
    assert torch.equal(first.bias.grad, raw[1] * torch.tensor([0.0, 1.0, 0.0, 0.75]))
    assert torch.equal(second.weight.grad, raw[2] * factor_w2)
    assert torch.equal(second.bias.grad, raw[3] * torch.tensor([1.0, 0.0, 0.0]))
    owned_w2 = torch.minimum(a2[:, None], a1[None, :]) == 1
    assert owned_w2.sum() == 4 and (second.weight.grad[owned_w2] == 0).all()
    assert (first.weight.grad[a1 == 1] == 0).all()


def test_embedding_gradient_is_compensated() -> None:
    hat = _hat(s_max=4.0)
    hat.on_task_start(1, SyntheticStream("TIL"))
    embedding = hat.embeddings["1"]
    with torch.no_grad():
        embedding.zero_()
        embedding[1] = 1.0
    embedding.grad = torch.ones_like(embedding)
    hat._s = 2.0
    hat.on_before_optimizer_step(torch.optim.SGD([embedding], lr=0.1))
    # s_max / s · (cosh(s e) + 1) / (cosh(e) + 1): e = 0 → 2; e = 1 → 2 (cosh 2 + 1) / (cosh 1 + 1)
    assert embedding.grad[0].item() == pytest.approx(2.0, rel=1e-6)
    expected = 2 * (math.cosh(2.0) + 1) / (math.cosh(1.0) + 1)
    assert embedding.grad[1].item() == pytest.approx(expected, rel=1e-6)


def test_weights_owned_by_task_one_do_not_move_while_task_two_trains() -> None:
    torch.manual_seed(0)
    hat = _hat(hidden=(16, 16))
    stream = SyntheticStream("TIL")
    run_tasks(hat, stream, [1], max_steps=30)
    owned = hat.cumulative_mask == 1.0
    assert 0 < owned.sum() < owned.numel()
    before = [layer.weight.detach().clone() for layer in hat.linears]
    run_tasks(hat, stream, [2], max_steps=30)
    a = list(owned.float().split(hat.units))
    for k, layer in enumerate(hat.linears):
        below = a[k - 1] if k else torch.ones(layer.in_features)
        frozen = torch.minimum(a[k][:, None], below[None, :]) == 1
        assert torch.equal(layer.weight[frozen], before[k][frozen])
        assert not torch.equal(layer.weight[~frozen], before[k][~frozen])


# ---------------------------------------------------------------------------- regularizer
def test_capacity_regularizer_equals_the_hand_computed_value() -> None:
    mask = torch.tensor([0.5, 1.0, 0.2, 0.8])
    previous = torch.tensor([1.0, 0.0, 0.5, 0.0])
    # free units 1 - a^{<t} = (0, 1, .5, 1): (0 + 1 + .1 + .8) / 2.5
    assert capacity_regularizer(mask, previous).item() == pytest.approx(1.9 / 2.5, rel=1e-6)
    assert capacity_regularizer(mask, None).item() == pytest.approx(2.5 / 4, rel=1e-6)
    assert capacity_regularizer(mask, torch.ones(4)).item() == 0.0  # nothing left to take


def test_loss_terms_are_cross_entropy_and_weighted_capacity() -> None:
    torch.manual_seed(0)
    hat = _hat(capacity_factor=0.5)
    stream = SyntheticStream("TIL")
    stream.setup_task(1)
    hat.on_task_start(1, stream)
    hat.cumulative_mask = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    x, y, t = next(iter(stream.train_dataloader()))
    terms = hat.loss_terms((x, y, t))
    # masks at s_max (no training step is running): the layers' outputs times sigmoid(400 e)
    a = torch.sigmoid(400.0 * hat.embeddings["1"]).detach()
    first, second = hat.linears
    h = F.relu(first(x.flatten(1))) * a[:4]
    h = F.relu(second(h)) * a[4:]
    assert torch.allclose(terms["ce"], F.cross_entropy(hat.heads(h, t), y))
    expected = 0.5 * (a * (1 - hat.cumulative_mask)).sum() / 4.0
    assert terms["capacity"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_annealed_s_goes_from_one_over_s_max_to_s_max() -> None:
    assert annealed_s(0, 5, 400.0) == pytest.approx(1 / 400)
    assert annealed_s(2, 5, 400.0) == pytest.approx(1 / 400 + (400 - 1 / 400) / 2)
    assert annealed_s(4, 5, 400.0) == pytest.approx(400.0)
    assert annealed_s(0, 1, 400.0) == 400.0


def test_cumulative_mask_is_the_maximum_of_the_task_masks() -> None:
    torch.manual_seed(0)
    hat = _hat(s_max=1.0)
    stream = SyntheticStream("TIL")
    run_tasks(hat, stream, [1, 2], max_steps=2)
    masks = [torch.sigmoid(hat.embeddings[t]).detach() for t in ("1", "2")]
    assert torch.equal(hat.cumulative_mask, torch.maximum(*masks))
    assert not hat.embeddings["1"].requires_grad and hat.embeddings["2"].requires_grad


# ---------------------------------------------------------------------------- state
def test_cl_state_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    hat = _hat()
    stream = SyntheticStream("TIL", num_tasks=3)
    run_tasks(hat, stream, [1, 2], max_steps=5)
    torch.save(hat.cl_state_dict(), tmp_path / "state.pt")
    restored = _hat()
    restored.load_cl_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert torch.equal(restored.cumulative_mask, hat.cumulative_mask)
    assert all(torch.equal(restored.embeddings[t], e) for t, e in hat.embeddings.items())
    for t in (1, 2):
        x, _, tasks = stream.test_sets[t - 1].tensors
        hat.eval(), restored.eval()
        assert torch.equal(restored(x, tasks), hat(x, tasks))
    checkpoint: dict = {}
    hat.on_save_checkpoint(checkpoint)  # Lightning's checkpoints carry the same state
    other = _hat()
    other.on_load_checkpoint(checkpoint)
    assert torch.equal(other.cumulative_mask, hat.cumulative_mask)


# ---------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("scenario", ["CIL", "DIL", "DataIL"])
def test_scenarios_other_than_til_are_refused_in_one_line(scenario: str) -> None:
    with pytest.raises(ValueError, match=r"^HAT does not support scenario") as info:
        build_algorithm("hat", scenario)
    assert "\n" not in str(info.value)
    cfg = compose_config(["cl_algorithm=hat", f"scenario={scenario}", "output_dir=/tmp/unused"])
    with pytest.raises(ConfigError, match="cl_algorithm HAT does not support scenario") as info:
        validate_config(cfg, build=False)
    assert "\n" not in str(info.value)


def test_backbones_other_than_a_plain_mlp_are_refused_in_one_line() -> None:
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    cnn = CNN(input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="use backbone=mlp") as info:
        HAT(cnn, make_heads("TIL", cnn.output_dim), optimizer, "TIL")
    assert "\n" not in str(info.value)
    mlp = MLP(INPUT_SHAPE, (8,), batch_norm=True)
    with pytest.raises(ValueError, match=r"set backbone\.batch_norm=false"):
        HAT(mlp, make_heads("TIL", mlp.output_dim), optimizer, "TIL")


# ---------------------------------------------------------------------------- split_digits
@pytest.mark.integration
def test_split_digits_run_forgets_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = compose_config(
        [
            "cl_dataset=split_digits",
            "cl_algorithm=hat",
            "scenario=TIL",
            "seed=0",
            "trainer.max_epochs=-1",
            "trainer.max_steps=30",
            "trainer.enable_progress_bar=false",
            "logger=none",
            f"output_dir={run}",
        ]
    )
    validate_config(cfg)
    run.mkdir()
    run_experiment(RunSpec.of(cfg, run))
    matrix = json.loads((run / "results" / "metrics.json").read_text())["accuracy_matrix"]
    # each task's accuracy stays what it was after training it (measured with seed 0: every
    # column constant, final row 0.989 0.989 0.978 1.0 0.841)
    for j in range(5):
        assert {matrix[i][j] for i in range(j, 5)} == {matrix[j][j]}, matrix
    assert min(matrix[-1]) > 0.8
    state = torch.load(run / "checkpoints" / "after_task_5.pt", weights_only=True)
    assert sorted(state["cl_state"]["hat"]["embeddings"]) == ["1", "2", "3", "4", "5"]

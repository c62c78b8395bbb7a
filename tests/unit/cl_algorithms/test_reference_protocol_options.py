"""The switches that make the vdv2022 experiments follow the reference implementation of van de
Ven et al. (2022): one Adam across tasks (`keep_optimizer_state`), ER's class memory with 1/t
weights, and LwF's Class-IL and Domain-IL weighting — each against a hand-built equivalent."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from cl_synthetic_stream import SyntheticStream, build_algorithm, run_tasks
from torch import nn

from clarena.cl_algorithms.base import carry_optimizer_state


def test_carried_adam_equals_one_adam_over_the_widest_layer_with_inactive_rows() -> None:
    """The reference's 4-unit layer trained with one Adam, where task 1's loss sees units 0-1 and
    task 2's all four, equals a 2-unit layer grown to 4 with the carried state."""
    torch.manual_seed(0)
    x = torch.randn(6, 3)
    y1, y2 = torch.tensor([0, 1, 0, 1, 1, 0]), torch.tensor([2, 3, 1, 2, 0, 3])
    wide = nn.Linear(3, 4)
    narrow = nn.Linear(3, 2)
    with torch.no_grad():
        narrow.weight.copy_(wide.weight[:2])
        narrow.bias.copy_(wide.bias[:2])
    reference = torch.optim.Adam(wide.parameters(), lr=0.1)
    for _ in range(3):
        reference.zero_grad()
        F.cross_entropy(wide(x)[:, :2], y1).backward()
        reference.step()
    first = torch.optim.Adam(narrow.parameters(), lr=0.1)
    for _ in range(3):
        first.zero_grad()
        F.cross_entropy(narrow(x), y1).backward()
        first.step()
    saved = {n: dict(first.state[p]) for n, p in narrow.named_parameters()}
    grown = nn.Linear(3, 4)
    with torch.no_grad():  # the new rows start where the reference's inactive rows still are
        grown.weight.copy_(torch.cat([narrow.weight, wide.weight[2:]]))
        grown.bias.copy_(torch.cat([narrow.bias, wide.bias[2:]]))
    second = torch.optim.Adam(grown.parameters(), lr=0.1)
    carry_optimizer_state(second, dict(grown.named_parameters()), saved)
    for _ in range(3):
        reference.zero_grad()
        F.cross_entropy(wide(x), y2).backward()
        reference.step()
        second.zero_grad()
        F.cross_entropy(grown(x), y2).backward()
        second.step()
    torch.testing.assert_close(grown.weight, wide.weight, rtol=0, atol=1e-6)
    torch.testing.assert_close(grown.bias, wide.bias, rtol=0, atol=1e-6)


def test_a_new_parameter_gets_zero_moments_and_the_global_step() -> None:
    old, new = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3))
    saved = {"old": {"step": torch.tensor(7.0), "exp_avg": torch.full((2,), 0.5)}}
    optimizer = torch.optim.Adam([old, new])
    carry_optimizer_state(optimizer, {"old": old, "new": new}, saved)
    assert optimizer.state[new]["step"].item() == 7.0
    assert optimizer.state[new]["exp_avg"].tolist() == [0.0, 0.0, 0.0]
    assert optimizer.state[old]["exp_avg"].tolist() == [0.5, 0.5]
    shrunk = nn.Parameter(torch.ones(1))
    with pytest.raises(ValueError, match="does not fit the parameter's"):
        carry_optimizer_state(torch.optim.Adam([shrunk]), {"old": shrunk}, saved)


@pytest.mark.parametrize("scenario", ["TIL", "CIL"])
def test_keep_optimizer_state_carries_adam_and_survives_the_cl_checkpoint(scenario, tmp_path):
    torch.manual_seed(0)
    algorithm = build_algorithm("er", scenario, keep_optimizer_state=True)
    algorithm.optimizer_factory = functools.partial(torch.optim.Adam, lr=0.01)
    stream = SyntheticStream(scenario, num_tasks=2)
    run_tasks(algorithm, stream, [1], max_steps=4)
    steps = {n: s["step"].item() for n, s in algorithm.optimizer_state.items()}
    assert steps and set(steps.values()) == {4.0}
    torch.save(algorithm.cl_state_dict(), tmp_path / "state.pt")
    restored = build_algorithm("er", scenario, keep_optimizer_state=True)
    restored.load_cl_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert restored.optimizer_state.keys() == algorithm.optimizer_state.keys()
    run_tasks(algorithm, stream, [2], max_steps=3)
    assert {s["step"].item() for s in algorithm.optimizer_state.values()} == {7.0}
    fresh = build_algorithm("er", scenario)
    run_tasks(fresh, stream, [1], max_steps=2)
    assert fresh.optimizer_state == {}


def test_er_class_memory_with_reference_weights() -> None:
    torch.manual_seed(0)
    er = build_algorithm("er", "TIL", budget_per_class=3, weighting="1/t", replay_weight=2.0)
    stream = SyntheticStream("TIL", num_tasks=3)
    for t in (1, 2):
        stream.setup_task(t)
        er.on_task_start(t, stream)
        if t == 1:
            x, y, task_ids = next(iter(stream.train_dataloader()))
            assert er.loss_terms((x, y, task_ids))["replay_ce"].item() == 0.0  # nothing stored
        er.on_task_end(t, stream)
    memory = er.class_memory.tensors
    assert memory["task_ids"].tolist() == [1] * 6 + [2] * 6
    stream.setup_task(3)
    er.on_task_start(3, stream)
    x, y, task_ids = next(iter(stream.train_dataloader()))
    state = er.class_memory.generator.get_state()
    terms = er.loss_terms((x, y, task_ids))
    er.class_memory.generator.set_state(state)
    replay = er.class_memory.sample(x.shape[0], x.device)
    # TIL: ⌈B / 2⌉ of each earlier task
    assert replay["task_ids"].tolist().count(1) == replay["task_ids"].tolist().count(2)
    assert replay["task_ids"].tolist().count(1) == min(3 * 2, math.ceil(x.shape[0] / 2))
    logits = er(torch.cat([x, replay["x"]]), torch.cat([task_ids, replay["task_ids"]]))
    n = x.shape[0]
    # task 3: (1/3) CE + (2/3) β CE_replay
    torch.testing.assert_close(terms["ce"], F.cross_entropy(logits[:n], y) / 3)
    replay_ce = F.cross_entropy(logits[n:], replay["y"])
    torch.testing.assert_close(terms["replay_ce"], (2 / 3) * 2.0 * replay_ce)
    assert er.buffer is None  # no reservoir
    with pytest.raises(ValueError, match="weighting must be one of sum, 1/t"):
        build_algorithm("er", "CIL", weighting="mean")


def _lwf_on_task_2(scenario: str, **kwargs):
    torch.manual_seed(0)
    lwf = build_algorithm("lwf", scenario, temperature=2.0, **kwargs)
    stream = SyntheticStream(scenario, num_tasks=3)
    run_tasks(lwf, stream, [1, 2], max_steps=2)
    stream.setup_task(3)
    lwf.on_task_start(3, stream)
    return lwf, next(iter(stream.train_dataloader()))


def test_lwf_class_il_distils_over_every_class_with_zero_targets_for_new_ones() -> None:
    lwf, (x, y, task_ids) = _lwf_on_task_2("CIL", distill_new_classes=True)
    student = lwf(x, task_ids)  # 6 classes so far
    teacher = lwf.h1_logits(x, task_ids)  # 4 classes
    assert student.shape[1] == 6 and teacher.shape[1] == 4
    q = torch.cat([F.softmax(teacher / 2, 1), torch.zeros(x.shape[0], 2)], 1)
    by_hand = -(q * F.log_softmax(student / 2, 1)).sum(1).mean()
    torch.testing.assert_close(lwf.loss_terms((x, y, task_ids))["distillation"], by_hand)
    lwf.terms["distillation"].distill_new_classes = False  # the default: over h1's 4 classes only
    old_only = -(F.softmax(teacher / 2, 1) * F.log_softmax(student[:, :4] / 2, 1)).sum(1).mean()
    torch.testing.assert_close(lwf.loss_terms((x, y, task_ids))["distillation"], old_only)


def test_lwf_domain_il_counts_the_shared_head_once_per_earlier_task() -> None:
    lwf, batch = _lwf_on_task_2("DIL", count_old_tasks=True)
    counted = lwf.loss_terms(batch)["distillation"]
    lwf.terms["distillation"].count_old_tasks = False
    torch.testing.assert_close(counted, 2 * lwf.loss_terms(batch)["distillation"])


def test_a_class_memory_needs_a_term_that_replays_samples() -> None:
    from clarena.cl_algorithms.terms import CrossEntropy, LogitReplay

    for terms in ({"ce": CrossEntropy()}, {"ce": CrossEntropy(), "der": LogitReplay()}):
        with pytest.raises(ValueError, match="budget_per_class needs a term that replays"):
            build_algorithm("composed", "CIL", terms=terms, budget_per_class=3)

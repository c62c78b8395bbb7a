"""Heads: TIL heads selected by task id, CIL growth keeping old weights, the shared head."""

from __future__ import annotations

import pytest
import torch

from clarena.heads import PAD_LOGIT, GrowingHead, SharedHead, TaskHeads, make_heads


def test_make_heads_per_scenario() -> None:
    assert isinstance(make_heads("TIL", 4), TaskHeads)
    assert isinstance(make_heads("CIL", 4), GrowingHead)
    assert isinstance(make_heads("DIL", 4), SharedHead)
    data_il = make_heads("DataIL", 4)
    assert isinstance(data_il, SharedHead) and data_il.scenario == "DataIL"
    with pytest.raises(ValueError, match="unknown scenario 'XIL'"):
        make_heads("XIL", 4)


def test_til_heads_are_selected_by_task_id() -> None:
    heads = TaskHeads(3)
    heads.setup_task(1, 2)
    heads.setup_task(2, 3)
    with torch.no_grad():
        heads.heads["1"].weight.fill_(1.0)
        heads.heads["1"].bias.zero_()
        heads.heads["2"].weight.fill_(-1.0)
        heads.heads["2"].bias.zero_()
    features = torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    assert heads(features, torch.tensor([1, 1])).tolist() == [[6.0, 6.0], [3.0, 3.0]]
    assert heads(features, torch.tensor([2, 2])).tolist() == [[-6.0] * 3, [-3.0] * 3]
    # a mixed batch: each row through its own head, padded to the widest task
    mixed = heads(features, torch.tensor([1, 2]))
    assert mixed.tolist() == [[6.0, 6.0, PAD_LOGIT], [-3.0, -3.0, -3.0]]
    assert heads.class_range(2) == (0, 3)
    assert heads.num_logits(torch.tensor([2, 1, 1])).tolist() == [3, 2, 2]
    assert heads.shared_parameters() == {}
    with pytest.raises(ValueError, match="no head for task 3"):
        heads(features, torch.tensor([3, 3]))


def test_cil_head_keeps_old_weights_when_growing() -> None:
    head = GrowingHead(3)
    head.setup_task(1, 2)
    assert head.linear is not None
    old_w, old_b = head.linear.weight.detach().clone(), head.linear.bias.detach().clone()
    head.setup_task(2, 5)
    assert head.linear.weight.shape == (5, 3)
    assert torch.equal(head.linear.weight[:2], old_w) and torch.equal(head.linear.bias[:2], old_b)
    assert head.class_range(1) == (0, 2) and head.class_range(2) == (2, 5)
    assert head(torch.zeros(4, 3), torch.ones(4, dtype=torch.long)).shape == (4, 5)
    head.setup_task(2, 5)  # idempotent
    with pytest.raises(ValueError, match="expected task 3"):
        head.setup_task(4, 7)
    with pytest.raises(ValueError, match="cannot shrink"):
        head.setup_task(3, 4)


def test_shared_head() -> None:
    head = SharedHead(3)
    head.setup_task(1, 4)
    weight = head.linear.weight
    head.setup_task(2, 4)
    assert head.linear.weight is weight
    assert head.class_range(7) == (0, 4) and head.knows(7)
    with pytest.raises(ValueError, match="every task shares 4 classes, task 3 asks for 5"):
        head.setup_task(3, 5)


def test_tasks_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="tasks are numbered from 1"):
        TaskHeads(3).setup_task(0, 2)

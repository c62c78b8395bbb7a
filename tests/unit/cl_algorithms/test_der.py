"""DER / DER++: stored logits compared only over the classes they cover; replay terms."""

from __future__ import annotations

import pytest
import torch
from cl_synthetic_stream import SyntheticStream, build_algorithm, run_tasks

from clarena.cl_algorithms.regularizers import DistillationReg
from clarena.cl_algorithms.regularizers.distillation import stored_logit_distance


def test_stored_logits_are_compared_only_over_the_classes_they_cover() -> None:
    distance = DistillationReg(0.3, distance="MSE")
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]], requires_grad=True)
    stored = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # stored 3 wide, zero-padded
    widths = torch.tensor([2, 3])
    value = stored_logit_distance(distance, logits, stored, widths)
    # covered entries: row 0 columns 0-1 (diffs 1, 2), row 1 columns 0-2 (diffs 0): 5 / 5 entries
    assert value.item() == pytest.approx(0.3 * 5 / 5)
    value.backward()
    # no gradient into the columns a stored sample does not cover
    assert logits.grad[0, 2:].tolist() == [0.0, 0.0] and logits.grad[1, 3].item() == 0.0
    # d/dz of 0.3 · mean over 5 covered entries of (z − s)²: 0.3 · 2 (z − s) / 5
    assert logits.grad[0, :2].tolist() == pytest.approx([0.12, 0.24])
    moved = logits.detach().clone()
    moved[0, 2:] += 100.0
    moved[1, 3] -= 50.0
    assert stored_logit_distance(distance, moved, stored, widths).item() == pytest.approx(
        value.item()
    )


@pytest.mark.parametrize("name", ["der", "derpp"])
def test_der_in_cil_keeps_the_width_each_sample_was_stored_with(name: str) -> None:
    torch.manual_seed(0)
    der = build_algorithm(name, "CIL", buffer_size=40)
    stream = SyntheticStream("CIL")
    run_tasks(der, stream, [1], max_steps=4)
    buf = der.buffer
    assert len(buf) == 32 and buf.logits is not None and buf.logits.shape[1] == 2
    assert buf.logit_widths is not None and set(buf.logit_widths[:32].tolist()) == {2}
    # the stored logits are the model's outputs at insertion time, not recomputed later
    run_tasks(der, stream, [2], max_steps=4)
    widths = dict(zip(buf.task_ids[: len(buf)].tolist(), buf.logit_widths[: len(buf)].tolist()))
    assert widths == {1: 2, 2: 4} and buf.logits.shape[1] == 4
    old = buf.task_ids[: len(buf)] == 1
    assert (buf.logits[: len(buf)][old][:, 2:] == 0).all()
    x, y, t = next(iter(stream.train_dataloader()))
    terms = der.loss_terms((x, y, t))
    expected = {"ce", "logit_replay"} | ({"replay_ce"} if name == "derpp" else set())
    assert set(terms) == expected and terms["logit_replay"].item() > 0


def test_derpp_needs_a_non_negative_beta() -> None:
    with pytest.raises(ValueError, match="beta must be ≥ 0"):
        build_algorithm("derpp", "TIL", beta=-1.0)

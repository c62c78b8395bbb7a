"""LwF: the teacher is the pre-task model, gets no gradient, and the term is zero on task 1."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cl_synthetic_stream import SyntheticStream, build_algorithm, make_trainer, run_tasks


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


@pytest.mark.parametrize("scenario", ["TIL", "CIL", "DIL"])
def test_lwf_distillation_is_zero_on_the_first_task_and_terms_are_logged(scenario: str) -> None:
    torch.manual_seed(0)
    lwf = build_algorithm("lwf", scenario, temperature=2.0)
    stream = SyntheticStream(scenario)
    stream.setup_task(1)
    lwf.on_task_start(1, stream)
    x, y, t = next(iter(stream.train_dataloader()))
    terms = lwf.loss_terms((x, y, t))
    assert lwf.h1 is None
    assert terms["distillation"].item() == 0.0  # nothing to distil on the first task
    trainer = make_trainer(4)
    trainer.fit(lwf, train_dataloaders=stream.train_dataloader())
    # every term is logged under its own name
    assert trainer.callback_metrics["train/distillation"].item() == 0.0
    assert trainer.callback_metrics["train/ce"].item() > 0.0
    assert trainer.callback_metrics["train/loss"].item() == trainer.callback_metrics["train/ce"]


@pytest.mark.parametrize("scenario", ["TIL", "CIL", "DIL"])
def test_lwf_on_the_second_task(scenario: str) -> None:
    torch.manual_seed(0)
    lwf = build_algorithm("lwf", scenario, temperature=2.0)
    stream = SyntheticStream(scenario)
    run_tasks(lwf, stream, [1])
    after_task_1 = _params(lwf.backbone) | {f"h.{n}": p for n, p in _params(lwf.heads).items()}
    stream.setup_task(2)
    lwf.on_task_start(2, stream)
    h1 = lwf.h1
    assert h1 is not None and not h1.training
    assert all(not p.requires_grad for p in h1.parameters())
    snap = _params(h1.backbone) | {f"h.{n}": p for n, p in _params(h1.heads).items()}
    assert snap.keys() == after_task_1.keys()
    assert all(torch.equal(snap[k], after_task_1[k]) for k in snap)
    # h1 is not trained: not among the optimised parameters, no gradient after a backward
    trainable = {id(p) for p in lwf.trainable_parameters()}
    assert not any(id(p) in trainable for p in h1.parameters())
    x, y, t = next(iter(stream.train_dataloader()))
    terms = lwf.loss_terms((x, y, t))
    # before any step on task 2 the student's old outputs equal the teacher's, so the modified
    # cross-entropy is the entropy of the teacher's softened output over the old classes
    with torch.no_grad():
        feats = h1.backbone(x)
        old = h1.heads.head(feats, 1) if scenario == "TIL" else h1.heads(feats, t)
    q = F.softmax(old / 2.0, dim=1)
    entropy = -(q * q.log()).sum(1).mean()
    assert terms["distillation"].item() == pytest.approx(entropy.item(), rel=1e-5)
    sum(terms.values()).backward()
    assert all(p.grad is None for p in h1.parameters())
    # training moves the student away from the teacher; the teacher stays as it was, in eval mode
    make_trainer(5).fit(lwf, train_dataloaders=stream.train_dataloader())
    assert not h1.training
    after = _params(h1.backbone) | {f"h.{n}": p for n, p in _params(h1.heads).items()}
    assert all(torch.equal(after[k], snap[k]) for k in snap)
    moved = _params(lwf.backbone)
    assert any(not torch.equal(moved[k], after_task_1[k]) for k in moved)
    assert lwf.loss_terms((x, y, t))["distillation"].item() > 0.0

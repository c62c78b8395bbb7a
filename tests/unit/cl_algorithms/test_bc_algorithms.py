"""BCNewError and StrictImitation: h1, λc = 0 equivalence, support and dissonance (SPEC §2)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cl_synthetic_stream import SyntheticStream, build_algorithm, make_trainer, run_tasks
from torch import nn

from clarena.heads import PAD_LOGIT


def _manual_run(algorithm, stream: SyntheticStream, tasks, steps: int) -> list[float]:
    """Train with a plain loop; return every step's total loss."""
    losses = []
    for t in tasks:
        stream.setup_task(t)
        algorithm.on_task_start(t, stream)
        optimizer = algorithm.configure_optimizers()
        for _, batch in zip(range(steps), stream.train_dataloader()):
            loss = torch.stack(list(algorithm.loss_terms(batch).values())).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        algorithm.on_task_end(t, stream)
    return losses


@pytest.mark.parametrize(
    ("name", "reference", "scenario", "kwargs"),
    [
        ("bc_new_error", "finetuning", "DIL", {}),
        ("strict_imitation", "finetuning", "DataIL", {"temperature": 2.0, "focal_alpha": 0.5}),
        ("bc_new_error", "er", "CIL", {"buffer_size": 24}),
        ("strict_imitation", "er", "TIL", {"buffer_size": 24}),
    ],
)
def test_lambda_zero_equals_the_algorithm_without_dissonance_step_for_step(
    name: str, reference: str, scenario: str, kwargs: dict
) -> None:
    runs = {}
    for algo_name in (name, reference):
        torch.manual_seed(0)
        extra = dict(kwargs, lambda_c=0.0) if algo_name == name else {}
        if algo_name == "er":
            extra = {"buffer_size": kwargs["buffer_size"]}
        algorithm = build_algorithm(algo_name, scenario, **extra)
        losses = _manual_run(algorithm, SyntheticStream(scenario, num_tasks=3), [1, 2, 3], 4)
        runs[algo_name] = (losses, algorithm.state_dict())
    assert runs[name][0] == runs[reference][0]  # the same losses, exactly
    assert len(runs[name][0]) == 12
    a, b = runs[name][1], runs[reference][1]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_h1_is_the_snapshot_from_before_the_current_task() -> None:
    torch.manual_seed(0)
    bc = build_algorithm("bc_new_error", "DIL", lambda_c=1.0)
    stream = SyntheticStream("DIL", num_tasks=3)
    run_tasks(bc, stream, [1], max_steps=3)
    end_of_1 = {k: v.clone() for k, v in bc.state_dict().items()}
    stream.setup_task(2)
    bc.on_task_start(2, stream)
    snapshot = {f"backbone.{k}": v for k, v in bc.h1.backbone.state_dict().items()} | {
        f"heads.{k}": v for k, v in bc.h1.heads.state_dict().items()
    }
    assert snapshot.keys() == end_of_1.keys()
    assert all(torch.equal(v, end_of_1[k]) for k, v in snapshot.items())
    make_trainer(3).fit(bc, train_dataloaders=stream.train_dataloader())
    bc.on_task_end(2, stream)
    end_of_2 = {k: v.clone() for k, v in bc.backbone.state_dict().items()}
    for k, v in bc.h1.backbone.state_dict().items():  # h1 did not move during task 2
        assert torch.equal(v, end_of_1[f"backbone.{k}"])
    assert any(not torch.equal(end_of_2[k], end_of_1[f"backbone.{k}"]) for k in end_of_2)
    stream.setup_task(3)
    bc.on_task_start(3, stream)
    for k, v in bc.h1.backbone.state_dict().items():
        assert torch.equal(v, end_of_2[k])


def _second_task(name: str, scenario: str, **kwargs):
    torch.manual_seed(0)
    algorithm = build_algorithm(name, scenario, **kwargs)
    stream = SyntheticStream(scenario)
    run_tasks(algorithm, stream, [1], max_steps=3)
    stream.setup_task(2)
    algorithm.on_task_start(2, stream)
    return algorithm, stream


def test_new_error_dissonance_in_dil_follows_spec_section_2() -> None:
    bc, stream = _second_task("bc_new_error", "DIL", lambda_c=0.7)
    x, _, t = next(iter(stream.train_dataloader()))
    y = torch.randint(0, 2, (x.shape[0],), generator=torch.Generator().manual_seed(1))
    terms = bc.loss_terms((x, y, t))
    with torch.no_grad():
        h2, h1 = bc(x, t), bc.h1(x, t)
    support = (h1.argmax(1) == y).float()
    assert 0 < support.sum() < len(y)  # a real mix of supported and unsupported samples
    ce = F.cross_entropy(h2, y, reduction="none")
    expected = 0.7 * (support * ce).sum() / len(y)
    assert terms["dissonance"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert terms["ce"].item() == pytest.approx(ce.mean().item(), rel=1e-6)


def test_strict_imitation_dissonance_in_dil_follows_spec_section_2() -> None:
    si, stream = _second_task(
        "strict_imitation", "DIL", lambda_c=0.5, temperature=2.0, focal_alpha=0.25
    )
    x, _, t = next(iter(stream.train_dataloader()))
    y = torch.randint(0, 2, (x.shape[0],), generator=torch.Generator().manual_seed(1))
    terms = si.loss_terms((x, y, t))
    with torch.no_grad():
        h2, h1 = si(x, t), si.h1(x, t)
    support = (h1.argmax(1) == y).float()
    assert 0 < support.sum() < len(y)
    p1 = F.softmax(h1 / 2.0, dim=1)
    d = -(p1 * F.log_softmax(h2 / 2.0, dim=1)).sum(1)
    expected = 0.5 * ((support + 0.25 * (1 - support)) * d).mean()
    assert terms["dissonance"].item() == pytest.approx(expected.item(), rel=1e-5)


class _Recorder(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, h2, h1, target):
        self.calls.append((h2.detach(), h1.detach(), target))
        return self.inner(h2, h1, target)


@pytest.mark.parametrize("scenario", ["TIL", "CIL"])
def test_in_til_and_cil_the_dissonance_applies_to_replayed_old_task_samples(scenario) -> None:
    bc, stream = _second_task("bc_new_error", scenario, lambda_c=1.0, buffer_size=64)
    recorder = _Recorder(bc.dissonance)
    bc.terms["dissonance"].regularizer = recorder
    batch = next(iter(stream.train_dataloader()))
    for _ in range(6):  # the buffer now also holds task-2 samples
        bc.loss_terms(batch)
    h2, h1, target = recorder.calls[-1]
    assert bc.buffer is not None and (bc.buffer.task_ids[: len(bc.buffer)] == 2).any()
    # only task-1 samples reach the dissonance: their labels are task 1's
    task1_labels = {0, 1}
    assert set(target.tolist()) <= task1_labels and 0 < len(target) <= 8
    if scenario == "CIL":
        assert h2.shape[1] == 4 and h1.shape[1] == 4
        assert (h1[:, 2:] == PAD_LOGIT).all()  # h1 never saw classes 2, 3
    else:
        assert h2.shape[1] == 2 and h1.shape[1] == 2


@pytest.mark.parametrize("name", ["bc_new_error", "strict_imitation"])
@pytest.mark.parametrize("scenario", ["TIL", "CIL"])
def test_til_and_cil_without_a_buffer_are_refused(name: str, scenario: str) -> None:
    with pytest.raises(ValueError, match=rf"in {scenario} needs a replay buffer"):
        build_algorithm(name, scenario, buffer_size=0)


def test_binary_losses_are_refused_for_multiclass_heads() -> None:
    with pytest.raises(ValueError, match="does not apply to multi-class heads"):
        build_algorithm("bc_new_error", "DIL", loss="binary_cross_entropy")
    with pytest.raises(ValueError, match="lambda_c"):
        build_algorithm("strict_imitation", "DIL", lambda_c=-1.0)

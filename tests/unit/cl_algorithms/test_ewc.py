"""Online EWC: the Fisher (per-sample, eval mode), the penalty, constant memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cl_synthetic_stream import SyntheticStream, build_algorithm

from clarena.cl_algorithms import EWC


def _start_and_end(ewc: EWC, stream: SyntheticStream, task: int) -> None:
    stream.setup_task(task)
    ewc.on_task_start(task, stream)
    ewc.on_task_end(task, stream)


def test_fisher_is_the_mean_squared_per_sample_gradient() -> None:
    torch.manual_seed(0)
    ewc = build_algorithm("ewc", "DIL", fisher_chunk_size=5)
    stream = SyntheticStream("DIL")
    stream.setup_task(1)
    ewc.on_task_start(1, stream)
    fisher = ewc.collector.compute(stream.train_dataloader())
    # reference: one backward per sample
    params = ewc.collector.protected_parameters()
    expected = {n: torch.zeros_like(p) for n, p in params.items()}
    data = stream.train_sets[0].tensors
    for x, y, t in zip(*data):
        ewc.zero_grad()
        F.cross_entropy(ewc(x[None], t[None]), y[None]).backward()
        for n, p in params.items():
            expected[n] += p.grad.pow(2)
    assert fisher.keys() == expected.keys()
    assert set(fisher) == {
        "backbone.net.1.weight",
        "backbone.net.1.bias",
        "heads.linear.weight",
        "heads.linear.bias",
    }
    for n in fisher:
        torch.testing.assert_close(fisher[n], expected[n] / len(data[0]), rtol=1e-5, atol=1e-8)
    limited = EWC(
        ewc.backbone, ewc.heads, ewc.optimizer_factory, "DIL", fisher_num_samples=3
    ).collector.compute(stream.train_dataloader())
    assert all(torch.isfinite(v).all() for v in limited.values())


def test_fisher_leaves_batchnorm_statistics_and_weights_unchanged() -> None:
    torch.manual_seed(0)
    ewc = build_algorithm("ewc", "CIL")
    ewc.backbone = type(ewc.backbone)(
        input_shape=(1, 4, 4), hidden_dims=(16,), batch_norm=True, dropout=0.3
    )
    stream = SyntheticStream("CIL")
    stream.setup_task(1)
    ewc.on_task_start(1, stream)
    ewc.train()
    before = {k: v.clone() for k, v in ewc.state_dict().items()}
    bn = ewc.backbone.net[2]
    assert isinstance(bn, torch.nn.BatchNorm1d)
    ewc.on_task_end(1, stream)
    after = ewc.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # incl. running_mean/var
    assert int(bn.num_batches_tracked) == 0
    assert ewc.training and bn.training  # the mode is restored
    assert all(p.grad is None for p in ewc.parameters())


def test_penalty_is_zero_on_task_1_positive_on_task_2_and_grows_with_distance() -> None:
    torch.manual_seed(0)
    ewc = build_algorithm("ewc", "DIL", ewc_factor=10.0)
    stream = SyntheticStream("DIL")
    stream.setup_task(1)
    ewc.on_task_start(1, stream)
    batch = next(iter(stream.train_dataloader()))
    assert ewc.loss_terms(batch)["ewc"].item() == 0.0
    ewc.on_task_end(1, stream)
    stream.setup_task(2)
    ewc.on_task_start(2, stream)
    assert ewc.loss_terms(batch)["ewc"].item() == 0.0  # still at the anchor
    params = ewc.collector.protected_parameters()
    direction = {n: torch.randn_like(p) for n, p in params.items()}
    penalties = []
    for delta in (0.01, 0.02, 0.04):
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(ewc.collector.anchors[n] + delta * direction[n])
        penalties.append(ewc.loss_terms(batch)["ewc"].item())
        # λ Σ F (δ v)²
        expected = 10.0 * sum(
            (ewc.collector.fisher[n] * (delta * direction[n]) ** 2).sum() for n in params
        )
        assert penalties[-1] == pytest.approx(float(expected), rel=1e-5)
    assert 0 < penalties[0] < penalties[1] < penalties[2]
    assert penalties[1] == pytest.approx(4 * penalties[0], rel=1e-4)
    assert penalties[2] == pytest.approx(16 * penalties[0], rel=1e-4)


@pytest.mark.parametrize("scenario", ["TIL", "DIL"])
def test_memory_is_constant_in_the_number_of_tasks(scenario: str) -> None:
    torch.manual_seed(0)
    ewc = build_algorithm("ewc", scenario, gamma=0.9)
    stream = SyntheticStream(scenario, num_tasks=4)
    sizes = []
    for task in range(1, 5):
        _start_and_end(ewc, stream, task)
        sizes.append(
            (
                len(ewc.collector.fisher),
                sum(f.numel() for f in ewc.collector.fisher.values()),
                sum(a.numel() for a in ewc.collector.anchors.values()),
            )
        )
    assert len(set(sizes)) == 1, sizes
    # TIL task heads are private to their task; only the backbone is protected: 16·16 + 16
    if scenario == "TIL":
        assert sizes[0] == (2, 272, 272)


def test_online_fisher_in_cil_pads_the_grown_head() -> None:
    torch.manual_seed(0)
    ewc = build_algorithm("ewc", "CIL", gamma=0.5)
    stream = SyntheticStream("CIL")
    _start_and_end(ewc, stream, 1)
    old = ewc.collector.fisher["heads.linear.weight"].clone()
    assert old.shape == (2, 16)
    stream.setup_task(2)
    ewc.on_task_start(2, stream)
    new = ewc.collector.compute(stream.train_dataloader())["heads.linear.weight"]
    ewc.on_task_end(2, stream)
    running = ewc.collector.fisher["heads.linear.weight"]
    assert running.shape == (4, 16)
    torch.testing.assert_close(running[:2], new[:2] + 0.5 * old)
    torch.testing.assert_close(running[2:], new[2:])
    # on task 3 the penalty compares the grown head over the classes the anchor has
    stream3 = SyntheticStream("CIL", num_tasks=3)
    stream3.setup_task(3)
    ewc.on_task_start(3, stream3)
    batch = next(iter(stream3.train_dataloader()))
    assert ewc.loss_terms(batch)["ewc"].item() == 0.0

"""EWC as in van de Ven et al. (2022): offline penalties, the Fisher's labels, bounded memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from cl_synthetic_stream import SyntheticStream, build_algorithm

from clarena.cl_algorithms import EWC


def _fisher_by_loop(ewc: EWC, stream: SyntheticStream, labels: str) -> dict[str, torch.Tensor]:
    """One backward per sample (and per class for "all"), as the reference does it."""
    params = ewc.collector.protected_parameters()
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    x, y, t = stream.train_sets[stream.task_id - 1].tensors
    ewc.eval()
    for xi, yi, ti in zip(x, y, t, strict=True):
        logits = ewc(xi[None], ti[None])
        probs = torch.softmax(logits, -1)[0].detach()
        if labels == "all":
            choices = [(c, float(probs[c])) for c in range(logits.shape[1])]
        else:
            choices = [(int(logits.argmax()) if labels == "pred" else int(yi), 1.0)]
        for c, weight in choices:
            ewc.zero_grad()
            F.cross_entropy(ewc(xi[None], ti[None]), torch.tensor([c])).backward()
            for n, p in params.items():
                total[n] += weight * p.grad.pow(2)
    ewc.train()
    return {n: v / len(x) for n, v in total.items()}


@pytest.mark.parametrize(("scenario", "labels"), [("CIL", "all"), ("TIL", "all"), ("DIL", "pred")])
def test_fisher_labels_match_one_backward_per_sample_and_class(scenario: str, labels: str) -> None:
    torch.manual_seed(0)
    ewc = build_algorithm("ewc", scenario, fisher_labels=labels, fisher_chunk_size=7)
    stream = SyntheticStream(scenario, num_tasks=2)
    for task in (1, 2):  # task 2: CIL has 4 active outputs, TIL a second head
        stream.setup_task(task)
        ewc.on_task_start(task, stream)
        if task == 1:
            ewc.on_task_end(task, stream)
    fisher = ewc.collector.compute(stream.train_dataloader())
    expected = _fisher_by_loop(ewc, stream, labels)
    assert fisher.keys() == expected.keys()
    for n in fisher:
        torch.testing.assert_close(fisher[n], expected[n], rtol=1e-4, atol=1e-9)
    if scenario == "CIL":
        assert fisher["heads.linear.weight"].shape == (4, 16)
        assert float(fisher["heads.linear.weight"][:2].sum()) > 0  # the old classes count too


@pytest.mark.parametrize(("scenario", "labels"), [("CIL", "all"), ("TIL", "true")])
def test_the_matrix_product_rule_equals_per_sample_gradients(scenario: str, labels: str) -> None:
    torch.manual_seed(0)
    ewc = build_algorithm("ewc", scenario, hidden=(16, 8), fisher_labels=labels)
    stream = SyntheticStream(scenario)
    stream.setup_task(1)
    ewc.on_task_start(1, stream)
    assert ewc.collector._linear_layers() is not None
    fast = ewc.collector.compute(stream.train_dataloader())
    ewc.collector.linear_fisher = False
    slow = ewc.collector.compute(stream.train_dataloader())
    assert fast.keys() == slow.keys() and len(fast) == (6 if scenario == "CIL" else 4)
    for n in fast:
        torch.testing.assert_close(fast[n], slow[n], rtol=1e-4, atol=1e-9)


def test_unknown_fisher_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="fisher_labels must be one of 'true', 'pred', 'all'"):
        build_algorithm("ewc", "DIL", fisher_labels="sampled")


def test_offline_keeps_one_penalty_per_task_and_sums_them() -> None:
    torch.manual_seed(0)
    ewc = build_algorithm("ewc", "DIL", ewc_factor=3.0, online=False, fisher_labels="all")
    stream = SyntheticStream("DIL", num_tasks=3)
    for task in (1, 2):
        stream.setup_task(task)
        ewc.on_task_start(task, stream)
        with torch.no_grad():  # move away from the previous anchor, as training would
            for p in ewc.parameters():
                p.add_(0.1 * torch.randn_like(p))
        ewc.on_task_end(task, stream)
    assert len(ewc.collector.fishers) == len(ewc.collector.anchor_sets) == 2
    f1, f2 = ewc.collector.fishers
    a1, a2 = ewc.collector.anchor_sets
    assert not torch.equal(a1["heads.linear.weight"], a2["heads.linear.weight"])
    stream.setup_task(3)
    ewc.on_task_start(3, stream)
    batch = next(iter(stream.train_dataloader()))
    params = {n: p.detach() for n, p in ewc.collector.protected_parameters().items()}
    expected = 3.0 * sum(
        float((f[n] * (params[n] - a[n]) ** 2).sum()) for f, a in ((f1, a1), (f2, a2)) for n in f
    )
    assert ewc.loss_terms(batch)["ewc"].item() == pytest.approx(expected, rel=1e-5)
    # the checkpointed state restores both penalties
    other = build_algorithm("ewc", "DIL", ewc_factor=3.0, online=False)
    other.load_extra_cl_state(ewc.extra_cl_state())
    assert len(other.collector.fishers) == 2
    assert all(
        torch.equal(other.collector.fishers[k][n], ewc.collector.fishers[k][n])
        for k in (0, 1)
        for n in f1
    )


def test_online_state_of_the_one_fisher_format_still_loads() -> None:
    ewc = build_algorithm("ewc", "DIL")
    ewc.load_extra_cl_state({"fisher": {"w": torch.ones(2)}, "anchors": {"w": torch.zeros(2)}})
    assert torch.equal(ewc.collector.fisher["w"], torch.ones(2)) and torch.equal(
        ewc.collector.anchors["w"], torch.zeros(2)
    )


_PEAK = textwrap.dedent(
    """
    import functools, resource, sys, torch
    from torch.utils.data import DataLoader, TensorDataset
    from clarena.backbones import MLP
    from clarena.cl_algorithms import EWC
    from clarena.heads import make_heads
    torch.manual_seed(0)
    backbone = MLP(input_shape=(1, 28, 28), hidden_dims=(400,))
    heads = make_heads("TIL", backbone.output_dim)
    heads.setup_task(1, 2)
    sgd = functools.partial(torch.optim.SGD, lr=0.1)
    ewc = EWC(backbone, heads, sgd, "TIL", fisher_chunk_size=8)  # both counts fill whole chunks
    # the per-sample (torch.func) path, where the graph once leaked
    ewc.collector.linear_fisher = False
    peaks = []
    for n in (16, 256):
        data = TensorDataset(torch.rand(n, 1, 28, 28), torch.randint(0, 2, (n,)),
                             torch.ones(n, dtype=torch.long))
        ewc.collector.compute(DataLoader(data, batch_size=128))
        peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
    print(peaks[0], peaks[1])
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
def test_fisher_peak_memory_does_not_grow_with_the_sample_count() -> None:
    # A TIL task head is not protected; its parameters once entered the per-sample graph and chained
    # every sample's graph into the sums: about 1.2 MB per sample for this 314k-parameter model, so
    # 240 more samples cost about 300 MB. Now the peak after 256 samples is the peak after 16.
    out = subprocess.run(
        [sys.executable, "-c", _PEAK], capture_output=True, text=True, check=True
    ).stdout.split()
    small, large = (int(v) for v in out)
    assert large - small < 32 * 1024, f"peak RSS grew {(large - small) / 1024:.0f} MiB"

"""Reservoir replay buffer: uniform retention, class balance, sampling, checkpoint round-trip."""

from __future__ import annotations

import pytest
import torch

from clarena.cl_algorithms import ReplayBuffer


def _stream_ids(buffer: ReplayBuffer) -> list[int]:
    assert buffer.x is not None
    return buffer.x[: buffer.size, 0].long().tolist()


def test_reservoir_keeps_every_sample_with_equal_probability() -> None:
    # 1000 independent buffers of size 10 over a stream of 50 numbered samples: each sample should
    # be kept with probability 10/50 = 0.2, i.e. about 200 times.
    capacity, stream, trials = 10, 50, 1000
    counts = torch.zeros(stream)
    x = torch.arange(stream, dtype=torch.float32).unsqueeze(1)
    y = torch.zeros(stream, dtype=torch.long)
    for seed in range(trials):
        buffer = ReplayBuffer(capacity, seed=seed)
        for start in range(0, stream, 8):  # batches of 8, the last one shorter
            buffer.add(x[start : start + 8], y[start : start + 8], y[start : start + 8] + 1)
        assert len(buffer) == capacity and buffer.num_seen == stream
        counts[_stream_ids(buffer)] += 1
    expected = trials * capacity / stream
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # χ² with 49 degrees of freedom: the 0.1 % critical value is 85.35
    assert chi2 < 85.35, chi2
    # early and late samples are kept alike (a biased reservoir favours one end)
    assert abs(float(counts[:25].sum() - counts[25:].sum())) < 0.1 * counts.sum()


def test_draws_are_torch_randint_from_the_same_generator() -> None:
    # the scratch-tensor draw must give the stream torch.randint(high, (1,)) gives, 32- and 64-bit
    # ranges alike, or every stored ER / A-GEM buffer (and result) of a seed would change
    highs = [1, 2, 3, 7, 200, 12_000, 60_000, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**33 + 5]
    buffer = ReplayBuffer(4, seed=11)
    reference = torch.Generator().manual_seed(11)
    drawn = [buffer._randint(h) for h in highs * 50]
    expected = [int(torch.randint(h, (1,), generator=reference)) for h in highs * 50]
    assert drawn == expected
    assert all(0 <= d < h for d, h in zip(drawn, highs * 50, strict=True))


def test_buffer_fills_before_replacing() -> None:
    buffer = ReplayBuffer(4, seed=0)
    x = torch.arange(3, dtype=torch.float32).unsqueeze(1)
    buffer.add(x, torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long))
    assert len(buffer) == 3 and _stream_ids(buffer) == [0, 1, 2]


def test_class_balanced_reservoir_balances_an_imbalanced_stream() -> None:
    # 90 samples of class 0 then 10 of class 1 into 20 slots: plain reservoir keeps about 2 of class
    # 1; the class-balancing policy keeps all 10 of the minority class
    y = torch.cat([torch.zeros(90, dtype=torch.long), torch.ones(10, dtype=torch.long)])
    x = torch.arange(100, dtype=torch.float32).unsqueeze(1)
    balanced = ReplayBuffer(20, class_balanced=True, seed=0)
    plain = ReplayBuffer(20, seed=0)
    for buffer in (balanced, plain):
        for start in range(0, 100, 10):
            rows = slice(start, start + 10)
            buffer.add(x[rows], y[rows], torch.ones(10, dtype=torch.long))
    assert balanced.y is not None and plain.y is not None
    assert torch.bincount(balanced.y, minlength=2).tolist() == [10, 10]
    assert int(torch.bincount(plain.y, minlength=2)[1]) < 10


def test_sample_draws_distinct_stored_samples_and_filters_tasks() -> None:
    buffer = ReplayBuffer(6, seed=1)
    x = torch.arange(6, dtype=torch.float32).unsqueeze(1)
    tasks = torch.tensor([1, 1, 1, 2, 2, 2])
    buffer.add(x, torch.arange(6), tasks)
    batch = buffer.sample(4)
    assert batch is not None and batch["x"].shape == (4, 1)
    assert len(set(batch["x"][:, 0].tolist())) == 4
    assert torch.equal(batch["y"].float(), batch["x"][:, 0])
    old = buffer.sample(10, max_task=1)
    assert old is not None and sorted(old["y"].tolist()) == [0, 1, 2]
    assert ReplayBuffer(3).sample(2) is None


def test_logits_of_growing_width_are_kept_with_their_width() -> None:
    buffer = ReplayBuffer(4, seed=0)
    one = torch.ones(2, dtype=torch.long)
    buffer.add(torch.zeros(2, 1), one, one, logits=torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    buffer.add(
        torch.zeros(2, 1), one, one * 2, logits=torch.tensor([[5.0, 6.0, 7.0], [8.0, 9.0, 1.0]])
    )
    assert buffer.logits is not None and buffer.logit_widths is not None
    assert buffer.logits.tolist() == [[1, 2, 0], [3, 4, 0], [5, 6, 7], [8, 9, 1]]
    assert buffer.logit_widths.tolist() == [2, 2, 3, 3]


def test_buffer_survives_a_checkpoint_round_trip(tmp_path) -> None:
    buffer = ReplayBuffer(5, class_balanced=True, seed=3)
    for step in range(4):
        x = torch.randn(3, 1, 2, 2)
        y = torch.tensor([0, 1, step % 2])
        buffer.add(x, y, torch.ones(3, dtype=torch.long), logits=torch.randn(3, 2 + step))
    torch.save(buffer.state_dict(), tmp_path / "buffer.pt")
    restored = ReplayBuffer(5, class_balanced=True, seed=99)
    restored.load_state_dict(torch.load(tmp_path / "buffer.pt", weights_only=True))
    for name in ("x", "y", "task_ids", "logits", "logit_widths"):
        assert torch.equal(getattr(restored, name), getattr(buffer, name)), name
    assert (restored.num_seen, restored.size) == (buffer.num_seen, buffer.size) == (12, 5)
    assert restored.seen_per_class == buffer.seen_per_class
    # the random generator continues where it was: the same draws and the same insertions follow
    a, b = buffer.sample(3), restored.sample(3)
    assert a is not None and b is not None and torch.equal(a["x"], b["x"])
    x = torch.randn(4, 1, 2, 2)
    y = torch.tensor([0, 0, 1, 1])
    logits = torch.randn(4, 5)
    buffer.add(x, y, y, logits=logits)
    restored.add(x, y, y, logits=logits)
    assert torch.equal(buffer.x, restored.x) and torch.equal(buffer.logits, restored.logits)
    with pytest.raises(ValueError, match="capacity 5 ≠ configured 6"):
        ReplayBuffer(6).load_state_dict(buffer.state_dict())


def test_bad_capacity() -> None:
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        ReplayBuffer(0)


def test_logits_are_stored_in_float32() -> None:
    buffer = ReplayBuffer(2)
    one = torch.ones(1, dtype=torch.long)
    logits = torch.tensor([[1.0078125]], dtype=torch.bfloat16)  # as under bf16 autocast
    buffer.add(torch.zeros(1, 1), one, one, logits=logits)
    assert buffer.logits is not None and buffer.logits.dtype == torch.float32
    assert buffer.logits[0, 0].item() == 1.0078125


def test_til_classes_are_balanced_per_task() -> None:
    # TIL labels restart at 0 in every task: 80 task-1 samples (labels 0, 1) then 10 task-2 samples
    # (labels 0, 1) into 20 slots. With classes keyed by (task, label) the four classes get 5 each.
    y = torch.tensor([0, 1] * 40 + [0, 1] * 5)
    tasks = torch.tensor([1] * 80 + [2] * 10)
    x = torch.zeros(90, 1)
    buffer = ReplayBuffer(20, class_balanced=True, seed=0, per_task_classes=True)
    for start in range(0, 90, 10):
        rows = slice(start, start + 10)
        buffer.add(x[rows], y[rows], tasks[rows])
    assert buffer.task_ids is not None and buffer.y is not None
    pairs = sorted(zip(buffer.task_ids.tolist(), buffer.y.tolist()))
    assert [pairs.count(p) for p in [(1, 0), (1, 1), (2, 0), (2, 1)]] == [5, 5, 5, 5]
    assert build_er_buffer("TIL").per_task_classes and not build_er_buffer("CIL").per_task_classes


def build_er_buffer(scenario: str) -> ReplayBuffer:
    from cl_synthetic_stream import build_algorithm

    return build_algorithm("er", scenario, class_balanced=True).buffer

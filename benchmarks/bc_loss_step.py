"""Time one training step (forward, backward, optimizer step) with and without a BC loss.

In one run, on the same models and the same batches, three kinds of step:

- (a) plain cross-entropy on h2;
- (b) `clarena.losses.BCCrossEntropyLoss` and `StrictImitationKLDivergenceLoss` (h1 once without
  gradients, h2 once, the support as a multiplicative mask, no host synchronisation);
- (c) a reference computing the same loss the way BackwardCompatibilityML does it: h2 evaluated
  twice (on the batch, then again on the support selected by boolean-mask indexing), a `.item()`
  on the support size, and for strict imitation h1 evaluated a second time on the support.

Each reference is checked to give the same value as (b) before timing. Repetitions are
interleaved (a, b, c, a, b, c, ...) and the median of each is taken, so the load of a shared CPU
affects all three alike; on the CPU the clock is the process's own CPU time by default (one torch
thread), which other processes disturb far less than the wall clock. A fourth timing, h1's forward
pass alone without gradients, gives the floor any BC loss must pay: (a + h1 forward) / a.
Ratios b/a and b/c are printed per model (an MLP and two small CNNs) and device (the CPU, and
CUDA when available). Targets: b/a <= 1.4 and b/c <= 0.75.

Usage: `python benchmarks/bc_loss_step.py [--reps 30] [--steps 3] [--threads 1] [--support 0.9]
[--clock process|wall] [--cpu-only]`
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clarena.losses import BCCrossEntropyLoss, StrictImitationKLDivergenceLoss


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


class DocsCNN(nn.Module):
    """The small MNIST network of BackwardCompatibilityML's PyTorch examples (logits only)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = F.dropout(F.relu(self.fc1(x.flatten(1))), training=self.training)
        return self.fc2(x)


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int]] = {
    "MLP 784-512-512-10": (mlp, (1, 28, 28), 256),
    "CNN of the original examples, 1x28x28": (DocsCNN, (1, 28, 28), 256),
    "CNN 3x32x32, conv 16-32, fc 128-10": (cnn, (3, 32, 32), 128),
}


# ---- (c): the original library's way of computing the same losses ------------------------------
def reference_new_error_ce(h1: nn.Module, h2: nn.Module, lambda_c: float):
    def loss_fn(x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            h1_labels = h1(x).argmax(dim=1)
        correct = h1_labels == y
        logits = h2(x)
        base = F.cross_entropy(logits, y)
        dissonance = 0.0
        if correct.sum().item() > 0:
            support_logits = h2(x[correct])  # h2 a second time, on the support
            dissonance = F.cross_entropy(support_logits, y[correct], reduction="sum") / len(y)
        return base + lambda_c * dissonance

    return loss_fn


def reference_strict_kl(h1: nn.Module, h2: nn.Module, lambda_c: float):
    def loss_fn(x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            h1_labels = h1(x).argmax(dim=1)
        correct = h1_labels == y
        logits = h2(x)
        base = F.cross_entropy(logits, y)
        dissonance = 0.0
        if correct.sum().item() > 0:
            x_support = x[correct]
            log_p1 = F.log_softmax(h1(x_support), dim=1)  # h1 again, as the original did
            log_p2 = F.log_softmax(h2(x_support), dim=1)  # h2 again
            kl = F.kl_div(log_p2, log_p1, reduction="sum", log_target=True)
            dissonance = kl / len(y)
        return base + lambda_c * dissonance

    return loss_fn


# ---- the benchmark ----------------------------------------------------------------------------
def make_batches(h1: nn.Module, shape, batch, count, support, device, generator):
    """Inputs and labels such that h1 is right on about `support` of the samples."""
    batches = []
    for _ in range(count):
        x = torch.randn(batch, *shape, generator=generator).to(device)
        with torch.no_grad():
            predicted = h1(x).argmax(dim=1).cpu()
        noise = torch.randint(0, 10, (batch,), generator=generator)
        keep = torch.rand(batch, generator=generator) < support
        batches.append((x, torch.where(keep, predicted, noise).to(device)))
    return batches


PAIRS = [
    ("BCCrossEntropyLoss", "reference new-error"),
    ("StrictImitationKLDivergenceLoss", "reference strict-imitation KL"),
]


def bench_model(name, factory, shape, batch, device, args) -> list[str]:
    torch.manual_seed(0)
    h1 = factory().to(device).eval().requires_grad_(False)
    init = factory().to(device)
    generator = torch.Generator().manual_seed(1)
    batches = make_batches(h1, shape, batch, 8, args.support, device, generator)
    lambda_c = 1.0

    losses: dict[str, Callable[[Tensor, Tensor], Tensor]] = {}
    models: list[nn.Module] = []
    runs: dict[str, Callable[[Tensor, Tensor], None]] = {}

    def add(label, make_loss):
        h2 = copy.deepcopy(init)
        models.append(h2)
        loss_fn = make_loss(h2)
        optimizer = torch.optim.SGD(h2.parameters(), lr=0.01, momentum=0.9)

        def run(x: Tensor, y: Tensor) -> None:
            optimizer.zero_grad(set_to_none=True)
            loss_fn(x, y).backward()
            optimizer.step()

        losses[label], runs[label] = loss_fn, run

    add("cross-entropy", lambda h2: lambda x, y: F.cross_entropy(h2(x), y))
    add("BCCrossEntropyLoss", lambda h2: BCCrossEntropyLoss(h1, h2, lambda_c))
    add("reference new-error", lambda h2: reference_new_error_ce(h1, h2, lambda_c))
    add(
        "StrictImitationKLDivergenceLoss",
        lambda h2: StrictImitationKLDivergenceLoss(h1, h2, lambda_c),
    )
    add("reference strict-imitation KL", lambda h2: reference_strict_kl(h1, h2, lambda_c))

    def h1_forward(x: Tensor, y: Tensor) -> None:
        with torch.no_grad():
            h1(x)

    runs["h1 forward alone (no grad)"] = h1_forward  # the floor: what any BC loss must add

    # the references compute the same values as the loss classes (without dropout's randomness)
    x, y = batches[0]
    for model in models:
        model.eval()
    for ours, ref in PAIRS:
        torch.testing.assert_close(losses[ours](x, y), losses[ref](x, y), rtol=1e-4, atol=1e-5)
    for model in models:
        model.train()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    # On a shared CPU the process's own CPU time (one torch thread) is far less disturbed by other
    # processes than the wall clock; on CUDA only the wall clock (after synchronising) means much.
    clock = (
        time.process_time if device.type == "cpu" and args.clock == "process" else time.perf_counter
    )

    def timed(label: str, first: int) -> float:
        sync()
        start = clock()
        for i in range(args.steps):
            runs[label](*batches[(first + i) % len(batches)])
        sync()
        return (clock() - start) / args.steps

    for label in runs:  # warm-up
        timed(label, 0)
    times: dict[str, list[float]] = {label: [] for label in runs}
    for rep in range(args.reps):
        order = list(runs) if rep % 2 == 0 else list(reversed(runs))
        for label in order:
            times[label].append(timed(label, rep * args.steps))
    ms = {label: 1000 * statistics.median(values) for label, values in times.items()}
    with torch.no_grad():
        right = [(h1(x).argmax(1) == y).float().mean() for x, y in batches]
    support = torch.stack(right).mean().item()

    print(f"\n{name} on {device.type}, batch {batch}, h1 right on {support:.0%} of samples")
    for label, value in ms.items():
        print(f"  {label:<36} {value:8.2f} ms")
    plain, floor = ms["cross-entropy"], ms["h1 forward alone (no grad)"]
    rows = []
    for ours, ref in PAIRS:
        ba, bc = ms[ours] / plain, ms[ours] / ms[ref]
        verdict = "ok" if ba <= 1.4 and bc <= 0.75 else "MISSED"
        print(
            f"  {ours:<36} b/a = {ba:.2f} (target <= 1.4)  b/c = {bc:.2f} (target <= 0.75)  "
            f"{verdict}; floor (a + h1 forward)/a = {(plain + floor) / plain:.2f}"
        )
        rows.append(
            f"| {name} | {device.type} | {ours} | {plain:.1f} | {ms[ours]:.1f} | {ms[ref]:.1f} "
            f"| {floor:.1f} | **{ba:.2f}** | {(plain + floor) / plain:.2f} | **{bc:.2f}** |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30, help="interleaved repetitions (median)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed block")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--support", type=float, default=0.9, help="fraction h1 gets right")
    parser.add_argument(
        "--clock",
        choices=["process", "wall"],
        default="process",
        help="CPU timings from the process's CPU time (default; needs --threads 1) or wall time",
    )
    parser.add_argument("--cpu-only", action="store_true", help="skip CUDA even if present")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.cpu_only:
        devices.append(torch.device("cuda"))
    print(
        f"torch {torch.__version__}, {args.threads} CPU thread(s), "
        f"{args.reps} reps x {args.steps} steps, CPU clock: {args.clock}"
    )
    rows = []
    for device in devices:
        for name, (factory, shape, batch) in MODELS.items():
            rows += bench_model(name, factory, shape, batch, device, args)
    print(
        "\n| model | device | b: loss | a ms | b ms | c ms | h1 fwd ms | b/a | floor | b/c |"
        "\n|---|---|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""On a CUDA device: no host synchronisation and no CPU-only tensors inside the losses.

`torch.cuda.set_sync_debug_mode("error")` turns every synchronising call (`.item()`, boolean-mask
indexing, `nonzero`, copies to the host) into an error, so the forward and backward passes below
prove the losses and regularizers never wait for the device.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from clarena import losses
from clarena.cl_algorithms.regularizers import (
    DistillationReg,
    ParameterChangeReg,
    new_error_dissonance,
    strict_imitation_dissonance,
)

pytestmark = pytest.mark.gpu

NAMES = [
    "BCNLLLoss",
    "BCCrossEntropyLoss",
    "BCKLDivergenceLoss",
    "BCBinaryCrossEntropyLoss",
    "StrictImitationNLLLoss",
    "StrictImitationCrossEntropyLoss",
    "StrictImitationKLDivergenceLoss",
    "StrictImitationBinaryCrossEntropyLoss",
]


@contextlib.contextmanager
def no_sync():
    """Every synchronising CUDA call inside raises."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _models(out: int):
    torch.manual_seed(0)
    h1 = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, out)).cuda()
    h2 = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, out)).cuda()
    return h1, h2


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_loss_classes_never_synchronise(name, dtype):
    binary = "Binary" in name
    h1, h2 = _models(1 if binary else 10)
    x = torch.randn(64, 16, device="cuda")
    y = torch.randint(0, 2 if binary else 10, (64,), device="cuda")
    y = y.float() if binary else y
    options = {"temperature": 2.0, "focal_alpha": 0.3} if name.startswith("Strict") else {}
    loss_fn = getattr(losses, name)(h1, h2, 0.7, **options)
    loss_fn(x, y).backward()  # warm-up: lazy CUDA initialisation may synchronise once
    with no_sync():
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_fn(x, y)
        loss.backward()
    assert loss.device.type == "cuda"
    assert torch.isfinite(loss).item()


def test_regularizers_never_synchronise():
    h2 = torch.randn(32, 5, device="cuda", requires_grad=True)
    h1 = torch.randn(32, 5, device="cuda")
    y = torch.randint(0, 5, (32,), device="cuda")
    with no_sync():
        terms = [
            new_error_dissonance(h2, h1, y, "kl_div", 1.0),
            strict_imitation_dissonance(h2, h1, y, "cross_entropy", 1.0, 2.0, 0.1),
            DistillationReg(1.0, 2.0, "cross_entropy")(h2, h1),
            DistillationReg(1.0, 2.0, "MSE")(h2, h1),
            ParameterChangeReg(0.5)({"w": h2}, {"w": h1}, {"w": h1.abs()}),
        ]
        torch.stack(terms).sum().backward()
    assert all(term.device.type == "cuda" for term in terms)

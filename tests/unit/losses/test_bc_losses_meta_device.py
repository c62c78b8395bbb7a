"""No host synchronisation and no CPU-only tensors, checked without a GPU: the meta device.

Tensors on the meta device have shapes but no data. `.item()`, boolean-mask indexing and
`nonzero` fail on them (their result depends on data), and so does mixing in a non-scalar tensor
created on the CPU. Forward and backward passes that succeed on meta tensors therefore prove the
losses never synchronise with the host and create no CPU-only tensors, on any machine.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clarena import losses
from clarena.cl_algorithms.regularizers import (
    distillation_reg,
    new_error_dissonance,
    parameter_change_reg,
    strict_imitation_dissonance,
)

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
META = torch.device("meta")


def test_the_meta_device_catches_what_we_test_for():
    x = torch.empty(8, 3, device=META)
    with pytest.raises(RuntimeError):
        x.sum().item()
    with pytest.raises((NotImplementedError, RuntimeError)):
        x[x[:, 0] > 0]
    with pytest.raises(RuntimeError):
        x + torch.ones(8, 3)


@pytest.mark.parametrize("name", NAMES)
def test_loss_classes_run_on_meta_tensors(name):
    binary = "Binary" in name
    h1 = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1 if binary else 5)).to(META)
    h2 = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1 if binary else 5)).to(META)
    x = torch.empty(8, 4, device=META)
    y = torch.empty(8, device=META) if binary else torch.empty(8, dtype=torch.long, device=META)
    options = {"temperature": 2.0, "focal_alpha": 0.3} if name.startswith("Strict") else {}
    if binary:
        options["output"] = "logits"
    loss = getattr(losses, name)(h1, h2, 0.5, **options)(x, y)
    loss.backward()
    assert loss.device == META and loss.shape == ()
    assert all(p.grad is not None and p.grad.device == META for p in h2.parameters())


@pytest.mark.parametrize("output", ["logits", "probabilities"])
def test_binary_dissonance_on_probabilities_runs_on_meta_tensors(output):
    z2 = torch.empty(8, 1, device=META, requires_grad=True)
    z1, y = torch.empty(8, 1, device=META), torch.empty(8, device=META)
    for value in (
        new_error_dissonance(z2, z1, y, "binary_cross_entropy", 1.0, output=output),
        strict_imitation_dissonance(z2, z1, y, "binary_cross_entropy", 1.0, 2.0, output=output),
    ):
        value.backward()
        assert value.device == META


def test_regularizers_run_on_meta_tensors():
    student = torch.empty(8, 5, device=META, requires_grad=True)
    teacher = torch.empty(8, 5, device=META)
    for distance in ("cross_entropy", "MSE"):
        distillation_reg(student, teacher, 1.0, 2.0, distance).backward()
    penalty = parameter_change_reg({"w": student}, {"w": teacher}, 0.5, {"w": teacher})
    penalty.backward()
    assert penalty.device == META

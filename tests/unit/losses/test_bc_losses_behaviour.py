"""Behaviour of the eight loss classes: the SPEC §2 contract and the original's defects."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from clarena import losses

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


class Fixed(nn.Module):
    """Returns fixed outputs (scaled by a trainable scalar, so there is something to train)."""

    def __init__(self, outputs):
        super().__init__()
        self.register_buffer("outputs", torch.as_tensor(outputs, dtype=torch.float32))
        self.scale = nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.scale * self.outputs[x]


def fixed_pair(name, h1_outputs, h2_outputs):
    h1, h2 = Fixed(h1_outputs), Fixed(h2_outputs)
    return h1, h2


def mlp(out: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, out)
    )


def batch(name: str, size: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 4, generator=g)
    if "Binary" in name:
        return x, torch.randint(0, 2, (size,), generator=g).float()
    return x, torch.randint(0, 3, (size,), generator=g)


def models(name: str):
    out = 1 if "Binary" in name else 3
    return mlp(out, 0), mlp(out, 1)


@pytest.mark.parametrize("name", NAMES)
def test_h2_runs_once_h1_once_without_gradients_in_eval_mode(name):
    h1, h2 = models(name)
    h1.train()
    h1[3].eval()  # a mixed configuration must come back exactly as it was
    modes_before = [m.training for m in h1.modules()]
    calls = {"h1": 0, "h2": 0}
    seen = {}

    def count(which):
        def hook(module, args, output):
            calls[which] += 1
            if which == "h1":
                seen["grad_enabled"] = torch.is_grad_enabled()
                seen["training"] = [m.training for m in module.modules()]

        return hook

    h1.register_forward_hook(count("h1"))
    h2.register_forward_hook(count("h2"))
    x, y = batch(name)
    loss = getattr(losses, name)(h1, h2, 1.0)(x, y)
    loss.backward()
    assert calls == {"h1": 1, "h2": 1}
    assert seen["grad_enabled"] is False and not any(seen["training"])
    assert [m.training for m in h1.modules()] == modes_before
    assert all(p.grad is None for p in h1.parameters())
    assert all(p.grad is not None for p in h2.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_empty_and_full_support(name):
    binary = "Binary" in name
    strict = name.startswith("Strict")
    if binary:
        h2_out, y = [[1.0], [-2.0], [0.5]], torch.tensor([1.0, 0.0, 0.0])
        wrong, right = [[-3.0], [3.0], [2.0]], [[3.0], [-3.0], [-2.0]]
    else:
        h2_out, y = [[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [0.5, 0.0, 1.0]], torch.tensor([0, 1, 2])
        wrong = [[0.0, 4.0, 0.0], [4.0, 0.0, 0.0], [4.0, 0.0, 0.0]]
        right = [[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]]
    x = torch.arange(3)
    cls = getattr(losses, name)
    base = cls(*fixed_pair(name, wrong, h2_out), 0.0, reduction="none")(x, y).detach()
    # empty support: only the base loss, with finite gradients
    h1, h2 = fixed_pair(name, wrong, h2_out)
    value = cls(h1, h2, 2.0, reduction="none")(x, y)
    torch.testing.assert_close(value.detach(), base)
    value.sum().backward()
    assert torch.isfinite(h2.scale.grad)
    # full support: new-error is (1 + lambda_c) times the base loss
    h1, h2 = fixed_pair(name, right, h2_out)
    value = cls(h1, h2, 2.0, reduction="none")(x, y).detach()
    if strict:
        assert (value > base).all()
    else:
        torch.testing.assert_close(value, 3.0 * base)


@pytest.mark.parametrize("name", NAMES)
def test_batch_of_one(name):
    h1, h2 = models(name)
    h2.eval()  # BatchNorm cannot train on one sample
    x, y = batch(name, size=1)
    value = getattr(losses, name)(h1, h2, 0.5)(x, y)
    assert value.shape == () and torch.isfinite(value)
    assert getattr(losses, name)(h1, h2, 0.5, reduction="none")(x, y).shape == (1,)


@pytest.mark.parametrize("name", NAMES)
def test_mean_does_not_depend_on_batch_size(name):
    # the dissonance is divided by B in every variant (the original divided by |S|)
    h1, h2 = models(name)
    h1.eval(), h2.eval()
    x, y = batch(name, size=6)
    loss_fn = getattr(losses, name)(h1, h2, 0.8)
    doubled = loss_fn(torch.cat([x, x[:3]]), torch.cat([y, y[:3]]))
    per_sample = loss_fn(x, y, reduction="none")
    expected = torch.cat([per_sample, per_sample[:3]]).mean()
    torch.testing.assert_close(doubled, expected)
    torch.testing.assert_close(loss_fn(x, y, reduction="sum"), 6 * loss_fn(x, y))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_extreme_logits_give_finite_values_and_gradients(name, scale):
    binary = "Binary" in name
    g = torch.Generator().manual_seed(3)
    shape = (5, 1) if binary else (5, 3)
    h1, h2 = (
        Fixed(scale * torch.randn(shape, generator=g)),
        Fixed(scale * torch.randn(shape, generator=g)),
    )
    y = (
        torch.randint(0, 2, (5,), generator=g).float()
        if binary
        else torch.randint(0, 3, (5,), generator=g)
    )
    options = {"temperature": 3.0, "focal_alpha": 0.5} if name.startswith("Strict") else {}
    value = getattr(losses, name)(h1, h2, 1.0, **options)(torch.arange(5), y)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(h2.scale.grad)


def test_strict_imitation_follows_h1_soft_output_not_its_labels():
    # Same argmax, different confidence: strict imitation must see the difference (against hard
    # labels it would not), while new-error must not.
    h2_out = [[1.0, 0.5, 0.0], [0.0, 1.0, 0.2]]
    y = torch.tensor([0, 1])
    x = torch.arange(2)
    soft, sharp = [[1.0, 0.9, 0.0], [0.0, 1.0, 0.9]], [[9.0, 0.0, 0.0], [0.0, 9.0, 0.0]]
    for cls, differs in [
        (losses.StrictImitationCrossEntropyLoss, True),
        (losses.StrictImitationNLLLoss, True),
        (losses.StrictImitationKLDivergenceLoss, True),
        (losses.BCCrossEntropyLoss, False),
    ]:
        a = cls(Fixed(soft), Fixed(h2_out), 1.0)(x, y)
        b = cls(Fixed(sharp), Fixed(h2_out), 1.0)(x, y)
        assert bool(abs(a - b) > 1e-3) is differs, cls.__name__
    # and it differs from new-error on the same inputs
    strict = losses.StrictImitationCrossEntropyLoss(Fixed(soft), Fixed(h2_out), 1.0)(x, y)
    new_error = losses.BCCrossEntropyLoss(Fixed(soft), Fixed(h2_out), 1.0)(x, y)
    assert abs(strict - new_error) > 1e-3


def test_strict_kl_is_kl_h1_to_h2_in_the_right_order():
    # KL(p1 || p2) for p1 = (0.8, 0.2), p2 = (0.5, 0.5):
    # 0.8 log(0.8 / 0.5) + 0.2 log(0.2 / 0.5) = 0.19274475
    p1, p2 = [[math.log(0.8), math.log(0.2)]], [[0.0, 0.0]]
    loss_fn = losses.StrictImitationKLDivergenceLoss(Fixed(p1), Fixed(p2), 1.0, reduction="none")
    value = loss_fn(torch.arange(1), torch.tensor([0]))
    # base: -log 0.5 = 0.69314718; dissonance: 0.19274475
    torch.testing.assert_close(value, torch.tensor([0.6931471805599453 + 0.1927447698922587]))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"lambda_c": -0.1}, "lambda_c"),
        ({"lambda_c": float("nan")}, "lambda_c"),
        ({"lambda_c": float("inf")}, "lambda_c"),
        ({"reduction": "avg"}, "reduction"),
    ],
)
@pytest.mark.parametrize("name", NAMES)
def test_bad_constructor_arguments(name, kwargs, argument):
    h1, h2 = models(name)
    arguments = {"lambda_c": 0.5, **kwargs}
    with pytest.raises(ValueError, match=argument):
        getattr(losses, name)(h1, h2, **arguments)


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("Strict")])
def test_bad_strict_options(name):
    h1, h2 = models(name)
    with pytest.raises(ValueError, match="temperature"):
        getattr(losses, name)(h1, h2, 0.5, temperature=0.0)
    with pytest.raises(ValueError, match="focal_alpha"):
        getattr(losses, name)(h1, h2, 0.5, focal_alpha=-1.0)


def test_bad_binary_options():
    h1, h2 = models("Binary")
    with pytest.raises(ValueError, match="discriminant_pivot"):
        losses.BCBinaryCrossEntropyLoss(h1, h2, 0.5, discriminant_pivot=1.5)
    with pytest.raises(ValueError, match="output"):
        losses.BCBinaryCrossEntropyLoss(h1, h2, 0.5, output="scores")


@pytest.mark.parametrize("name", [n for n in NAMES if "Binary" not in n])
def test_bad_labels_for_multiclass(name):
    h1, h2 = models(name)
    h1.eval(), h2.eval()
    x, y = batch(name)
    loss_fn = getattr(losses, name)(h1, h2, 0.5)
    with pytest.raises(ValueError, match="target"):
        loss_fn(x, y.float())
    with pytest.raises(ValueError, match="target"):
        loss_fn(x, y[:5])
    with pytest.raises(ValueError, match="target"):
        loss_fn(x, y[:, None])


def test_mismatched_model_outputs():
    h1, h2 = mlp(3, 0), mlp(4, 1)
    x, y = batch("multi")
    with pytest.raises(ValueError, match="h1_output"):
        losses.BCCrossEntropyLoss(h1, h2, 0.5)(x, y)
    with pytest.raises(ValueError, match="h2_output"):
        losses.BCBinaryCrossEntropyLoss(mlp(3, 0), mlp(3, 1), 0.5)(x, y.float())

    class DictOutput(nn.Module):
        def forward(self, x):
            return {"logits": x[:, :3]}

    with pytest.raises(ValueError, match="models must return"):
        losses.BCCrossEntropyLoss(h1, DictOutput(), 0.5)(x, y)

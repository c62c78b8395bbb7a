"""Backbones: feature shapes, `output_dim`, parameter counts and argument checks."""

from __future__ import annotations

import pytest
import torch

from clarena.backbones import CNN, MLP, ResNet18


def test_mlp_2x400_shapes_and_parameter_count() -> None:
    mlp = MLP(input_shape=(1, 28, 28))
    assert mlp.output_dim == 400
    assert mlp(torch.zeros(3, 1, 28, 28)).shape == (3, 400)
    # 784·400 + 400 + 400·400 + 400
    assert sum(p.numel() for p in mlp.parameters()) == 474_400


def test_mlp_options() -> None:
    mlp = MLP(input_shape=(3, 4, 4), hidden_dims=(8, 5), batch_norm=True, dropout=0.5)
    assert mlp.output_dim == 5
    kinds = [type(m).__name__ for m in mlp.net]
    assert kinds == ["Flatten", "Linear", "BatchNorm1d", "ReLU", "Dropout"] * 1 + [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Dropout",
    ]
    assert mlp(torch.randn(4, 3, 4, 4)).shape == (4, 5)


def test_cnn_shapes() -> None:
    cnn = CNN(input_shape=(1, 28, 28), channels=(8, 16), hidden_dim=32)
    assert cnn.output_dim == 32
    assert cnn(torch.randn(2, 1, 28, 28)).shape == (2, 32)
    # the flattened width after two 2× poolings of 28×28 with 16 channels: 16·7·7
    assert cnn.fc[-2].in_features == 784


def test_resnet18_reduced_for_32x32() -> None:
    net = ResNet18(input_shape=(3, 32, 32), nf=4)
    assert net.output_dim == 32
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 32)
    blocks = [type(m).__name__ for m in net.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 8  # four stages of two torchvision BasicBlocks
    assert net.stem[0].stride == (1, 1) and net.stem[0].kernel_size == (3, 3)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: MLP(input_shape=(0, 28, 28)), "input_shape must be"),
        (lambda: MLP(input_shape=(1, 8, 8), hidden_dims=()), "hidden_dims must be positive"),
        (lambda: MLP(input_shape=(1, 8, 8), activation="swish"), "unknown activation"),
        (lambda: MLP(input_shape=(1, 8, 8), dropout=1.0), "dropout must be"),
        (lambda: CNN(input_shape=(28, 28)), r"input_shape must be \(C, H, W\)"),
        (lambda: CNN(input_shape=(1, 3, 3)), "too small"),
        (lambda: ResNet18(input_shape=(3, 4, 4)), "H, W ≥ 8"),
        (lambda: ResNet18(input_shape=(3, 32, 32), nf=0), "nf must be positive"),
    ],
)
def test_bad_arguments_are_refused(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()

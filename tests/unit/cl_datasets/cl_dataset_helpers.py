"""Helpers of the cl_datasets tests: a tiny source whose every pixel encodes the sample's class."""

from __future__ import annotations

import torch

from clarena.cl_datasets import SourceData

PIXEL_BASE, PIXEL_STEP = 5, 20


def encode(classes: torch.Tensor, size: int = 4) -> torch.Tensor:
    """uint8 images `(N, 1, size, size)` whose pixels all equal `5 + 20 * class`."""
    values = (PIXEL_BASE + PIXEL_STEP * classes).to(torch.uint8)
    return values[:, None, None, None].expand(-1, 1, size, size).contiguous()


def decode(x: torch.Tensor) -> torch.Tensor:
    """The class of every image in a batch normalised with mean 0 and std 1."""
    return ((x[:, 0, 0, 0] * 255 - PIXEL_BASE) / PIXEL_STEP).round().long()


def encoded_source() -> SourceData:
    """6 classes; 4 training and 2 test samples of each, pixels encoding the class."""
    train_y = torch.arange(6).repeat(4)
    test_y = torch.arange(6).repeat(2)
    return SourceData("encoded", encode(train_y), train_y, encode(test_y), test_y, num_classes=6)


PLAIN = {"normalize_mean": [0.0], "normalize_std": [1.0], "val_fraction": 0.0}
"""Dataset settings under which `decode` recovers the classes and nothing is held out."""

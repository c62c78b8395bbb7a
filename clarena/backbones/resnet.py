"""Reduced ResNet-18 for 32×32 inputs, built from torchvision's `BasicBlock`."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

from clarena.backbones.mlp import check_input_shape


class ResNet18(nn.Module):
    """ResNet-18 adapted to small images: a 3×3 stride-1 stem without max-pooling, four stages of
    two torchvision `BasicBlock`s with widths `nf · (1, 2, 4, 8)`, global average pooling.

    `nf=20` is the reduced ResNet-18 of the continual-learning literature (Lopez-Paz & Ranzato, GEM,
    2017; Buzzega et al., DER, 2020); `nf=64` is the full-width network.

    Args:
        input_shape: `(C, H, W)` of one input sample (32×32 in the usual benchmarks; any size ≥ 8).
        nf: width of the first stage; `output_dim = 8 · nf`.
    """

    def __init__(self, input_shape: Sequence[int], nf: int = 20) -> None:
        super().__init__()
        shape = check_input_shape("ResNet18", input_shape)
        if len(shape) != 3 or min(shape[1:]) < 8:
            raise ValueError(f"ResNet18: input_shape must be (C, H, W) with H, W ≥ 8, got {shape}.")
        if nf <= 0:
            raise ValueError(f"ResNet18: nf must be positive, got {nf}.")
        self.stem = nn.Sequential(
            nn.Conv2d(shape[0], nf, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(nf),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        in_ch = nf
        for i, width in enumerate((nf, 2 * nf, 4 * nf, 8 * nf)):
            stride = 1 if i == 0 else 2
            stages.append(self._stage(in_ch, width, stride))
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.input_shape: tuple[int, ...] = shape
        """The shape of one input sample."""
        self.output_dim: int = 8 * nf
        """The feature width."""

    @staticmethod
    def _stage(in_ch: int, width: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or in_ch != width:
            downsample = nn.Sequential(
                nn.Conv2d(in_ch, width, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(width),
            )
        return nn.Sequential(
            BasicBlock(in_ch, width, stride=stride, downsample=downsample),
            BasicBlock(width, width),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Map images `(B, C, H, W)` to features `(B, 8 · nf)`."""
        return self.pool(self.stages(self.stem(x)))

"""A small convolutional backbone for 28×28 and 32×32 images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from clarena.backbones.mlp import check_input_shape


class CNN(nn.Module):
    """Convolutional feature extractor: blocks of `Conv3×3 → BatchNorm → ReLU → MaxPool2`, then a
    fully connected layer.

    Args:
        input_shape: `(C, H, W)` of one input sample.
        channels: output channels of each convolutional block (each halves the spatial size).
        hidden_dim: width of the final fully connected layer, which is `output_dim`.
        dropout: dropout probability before the final layer (0 disables it).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        hidden_dim: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        shape = check_input_shape("CNN", input_shape)
        if len(shape) != 3:
            raise ValueError(f"CNN: input_shape must be (C, H, W), got {shape}.")
        chans = [int(c) for c in channels]
        if not chans or any(c <= 0 for c in chans) or hidden_dim <= 0:
            raise ValueError(
                f"CNN: channels and hidden_dim must be positive, got {list(channels)}, "
                f"{hidden_dim}."
            )
        if min(shape[1:]) < 2 ** len(chans):
            raise ValueError(
                f"CNN: a {shape[1]}×{shape[2]} input is too small for {len(chans)} pooling blocks; "
                "use fewer channels entries."
            )
        blocks: list[nn.Module] = []
        in_ch = shape[0]
        for out_ch in chans:
            blocks += [
                nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_ch = out_ch
        self.features = nn.Sequential(*blocks, nn.Flatten())
        with torch.no_grad():
            flat = self.features(torch.zeros(2, *shape)).shape[1]
        fc: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
        self.fc = nn.Sequential(*fc, nn.Linear(flat, hidden_dim), nn.ReLU(inplace=True))
        self.input_shape: tuple[int, ...] = shape
        """The shape of one input sample."""
        self.output_dim: int = int(hidden_dim)
        """The feature width."""

    def forward(self, x: Tensor) -> Tensor:
        """Map images `(B, C, H, W)` to features `(B, output_dim)`."""
        return self.fc(self.features(x))

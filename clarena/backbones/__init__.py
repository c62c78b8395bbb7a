"""Backbones: feature extractors constructed with the dataset's `input_shape`.

Every backbone is an `nn.Module` built as `Backbone(input_shape=(C, H, W), ...)`, exposes
`output_dim` (the feature width) and maps a batch `(B, C, H, W)` to features `(B, output_dim)`.
The heads in `clarena.heads` turn features into logits.
"""

from clarena.backbones.cnn import CNN
from clarena.backbones.mlp import MLP
from clarena.backbones.resnet import ResNet18

__all__ = ["CNN", "MLP", "ResNet18"]

"""Backbones: feature extractors constructed with the dataset's `input_shape`.

Every backbone is an `nn.Module` built as `Backbone(input_shape=(C, H, W), ...)`, exposes
`output_dim` (the feature width) and maps a batch `(B, C, H, W)` to features `(B, output_dim)`.
The heads in `clarena.heads` turn features into logits.

Besides the built-ins (`MLP`, `CNN`, `ResNet18`), three adapters bring the networks people have:
`TorchvisionBackbone` (any `torchvision.models` classifier), `TimmBackbone` (any `timm` model, the
extra `clarena[timm]`) and `ModuleBackbone` (any `nn.Module`, by `_target_`); each drops the
network's classifier, loads a weights file as tensors only and can freeze the network.
"""

from clarena.backbones.adapter import ModuleBackbone
from clarena.backbones.cnn import CNN
from clarena.backbones.mlp import MLP
from clarena.backbones.resnet import ResNet18
from clarena.backbones.timm_models import TimmBackbone
from clarena.backbones.torchvision_models import TorchvisionBackbone

__all__ = ["CNN", "MLP", "ModuleBackbone", "ResNet18", "TimmBackbone", "TorchvisionBackbone"]

"""Any `nn.Module` as a backbone: its classifier dropped, its inputs adapted, optionally frozen."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clarena.backbones.mlp import check_input_shape
from clarena.backbones.weights import load_weights


def last_classifier(module: nn.Module) -> str:
    """The dotted name of `module`'s final classifier: its last `nn.Linear` or `nn.Conv2d` in
    registration order.

    Every classifier of `torchvision.models` registers its output layer last, under names that
    differ by family: `fc` (ResNet, ResNeXt, GoogLeNet, Inception, ShuffleNet, RegNet),
    `classifier` (DenseNet) or `classifier.<i>` (AlexNet, VGG, MobileNet, EfficientNet, MNASNet,
    ConvNeXt, MaxViT; a 1×1 convolution in SqueezeNet), `heads.head` (ViT), `head` (Swin). What
    precedes that layer in the same container (ConvNeXt's norm, MobileNet-v3's and MaxViT's
    pre-logits layer) stays part of the features.

    Raises:
        ValueError: when the module has no linear or convolutional layer.
    """
    names = [n for n, m in module.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not names:
        raise ValueError(
            f"{type(module).__name__} has no nn.Linear or nn.Conv2d layer to drop as its "
            "classifier; set classifier=null when the module returns features."
        )
    return names[-1]


def _first_conv_channels(module: nn.Module) -> int | None:
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    return None if conv is None else int(conv.in_channels)


class ModuleBackbone(nn.Module):
    """A user's `nn.Module` as a backbone: the features it computes feed clarena's heads.

    The module's own classifier (`classifier`) is replaced by `nn.Identity`; a weights file is
    loaded with `weights_only=True` after every key and shape is checked (the dropped classifier's
    keys are skipped, so a file of any number of classes fits); single-channel images are repeated
    to the channels the module's first convolution takes; `input_size` resizes inputs inside the
    backbone for models made for one size (a ViT at 224×224). `output_dim` is measured by one
    forward pass at construction, which also shows before training that the module takes the
    dataset's images.

    With `freeze`, the module's parameters do not require gradients (the optimizer gets the heads'
    only), its features are computed without autograd, and it stays in eval mode whatever
    `train()` is called with, so BatchNorm statistics and dropout do not change either.

    Args:
        input_shape: `(C, H, W)` (or any shape the module takes) of one input sample.
        module: the module; in YAML a nested `_target_` that Hydra instantiates.
        classifier: the dotted name of the module's final classifier to drop (`"fc"`,
            `"classifier.6"`), `"auto"` for its last linear or convolutional layer
            (`last_classifier`), or None when the module returns features already.
        weights: a `state_dict` file to load into the module (None: keep its weights).
        freeze: train the heads only.
        input_size: `[H, W]` to resize images to (bilinear, antialiased), or None.
        ignore_keys: key prefixes of the weights file to skip besides the classifier's.
        architecture: the module's name in messages (default: its class name).

    Raises:
        ValueError: a bad `input_shape` or `input_size`, a missing classifier, a weights file of
            another architecture, images the module cannot take, or a non-tensor output.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        module: nn.Module,
        classifier: str | None = None,
        weights: str | Path | None = None,
        freeze: bool = False,
        input_size: Sequence[int] | None = None,
        ignore_keys: Sequence[str] = (),
        architecture: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise ValueError(
                f"module must be an nn.Module, got {type(module).__name__}; in YAML give it a "
                "_target_ naming the module's class."
            )
        self.architecture: str = architecture or type(module).__name__
        """The module's name in messages."""
        shape = check_input_shape(self.architecture, input_shape)
        self.model = module
        dropped = last_classifier(module) if classifier == "auto" else classifier
        dropped_width = None if dropped is None else self._drop(dropped)
        self.classifier: str | None = dropped
        """The dotted name of the dropped classifier (None when none was)."""
        if weights is not None:
            ignore = [*ignore_keys, *([dropped] if dropped else [])]
            load_weights(self.model, weights, self.architecture, ignore=ignore)
        self.repeat_channels = self._channels(shape)
        """The channel count single-channel images are repeated to (None: no repetition)."""
        self.input_size = None if input_size is None else self._size(input_size)
        """`(H, W)` the images are resized to, or None."""
        self.freeze = bool(freeze)
        """Whether the module is frozen (see the class docstring)."""
        if self.freeze:
            self.model.requires_grad_(False)
        self.input_shape: tuple[int, ...] = shape
        """The shape of one input sample."""
        self.output_dim: int = self._measure(shape)
        """The feature width."""
        if classifier == "auto" and dropped_width not in (None, self.output_dim):
            raise ValueError(
                f"{self.architecture}: the guessed classifier {dropped!r} takes {dropped_width} "
                f"features but the module then returns {self.output_dim}; name the classifier "
                "with classifier=<dotted name>."
            )
        self.train(self.training)

    def _drop(self, name: str) -> int | None:
        """Replace the submodule `name` by `nn.Identity`; return the width it took."""
        try:
            layer = self.model.get_submodule(name)
        except AttributeError as exc:
            children = ", ".join(n for n, _ in self.model.named_children())
            raise ValueError(
                f"{self.architecture} has no submodule {name!r} to drop as its classifier; name "
                f"one of its modules (top level: {children}) or set classifier=null."
            ) from exc
        parent, _, attr = name.rpartition(".")
        setattr(self.model.get_submodule(parent) if parent else self.model, attr, nn.Identity())
        if isinstance(layer, nn.Linear):
            return int(layer.in_features)
        return int(layer.in_channels) if isinstance(layer, nn.Conv2d) else None

    def _channels(self, shape: tuple[int, ...]) -> int | None:
        wanted = _first_conv_channels(self.model)
        if len(shape) != 3 or wanted is None or wanted == shape[0]:
            return None
        if shape[0] == 1:
            return wanted
        raise ValueError(
            f"{self.architecture} takes {wanted}-channel images but the dataset's have "
            f"{shape[0]} channels; use a dataset with {wanted} or 1 channels (grey images are "
            "repeated), or a backbone made for these images."
        )

    def _size(self, input_size: Sequence[int]) -> tuple[int, int]:
        size = tuple(int(s) for s in input_size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(
                f"{self.architecture}: input_size must be [H, W] with positive sizes, got "
                f"{list(input_size)}."
            )
        return size[0], size[1]

    def _measure(self, shape: tuple[int, ...]) -> int:
        example = self._adapt(torch.zeros(1, *shape))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(example)
        except Exception as exc:  # the module's own refusal, whatever its type
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(
                f"{self.architecture} cannot take images of shape {tuple(example.shape[1:])} "
                f"({cause}); set input_size=[H, W] to a size it was made for (e.g. [224, 224])."
            ) from exc
        finally:
            self.model.train(was_training)
        if not isinstance(out, Tensor):
            raise ValueError(
                f"{self.architecture} returns a {type(out).__name__}, not a tensor of features; "
                "wrap it in a module whose forward returns the features."
            )
        return int(out.flatten(1).shape[1])

    def _adapt(self, x: Tensor) -> Tensor:
        if self.repeat_channels is not None:
            x = x.expand(-1, self.repeat_channels, -1, -1)
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", antialias=True)
        return x

    def train(self, mode: bool = True) -> ModuleBackbone:
        """Set the training mode; a frozen module stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Map inputs `(B, *input_shape)` to features `(B, output_dim)`."""
        x = self._adapt(x)
        if self.freeze:
            with torch.no_grad():
                return self.model(x).flatten(1)
        return self.model(x).flatten(1)

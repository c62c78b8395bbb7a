"""Any model of `timm` (the optional extra `clarena[timm]`) as a backbone."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clarena.backbones.adapter import ModuleBackbone

PRETRAINED: str = "pretrained"
"""The `weights` value that asks timm for the model's own pretrained weights."""


class TimmBackbone(ModuleBackbone):
    """A `timm` model without its classifier (`num_classes=0`: timm's pooled features).

    Everything of `ModuleBackbone` applies (grey images repeated to the model's channels,
    `freeze`, `input_size`).

    Args:
        input_shape: `(C, H, W)` of one input sample (passed by the pipeline).
        name: a name of `timm.list_models()`, optionally with a pretrained tag
            (`"resnet18.a1_in1k"`).
        weights: None (random initialisation), a `state_dict` or `.safetensors` file (any
            classifier width; read as tensors only), or `"pretrained"`: timm's weights for `name`,
            downloaded where the network allows.
        freeze: train the heads only (the backbone stays in eval mode, without gradients).
        input_size: `[H, W]` to resize the images to inside the backbone, or None.
        model_kwargs: further arguments of `timm.create_model` (e.g. `{drop_rate: 0.1}`).

    Raises:
        ValueError: timm is not installed, an unknown model name (with the closest names), a
            weights file of another architecture, a failed download, or images the model cannot
            take.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        name: str = "resnet18",
        weights: str | Path | None = None,
        freeze: bool = False,
        input_size: Sequence[int] | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            import timm
        except ImportError as exc:
            raise ValueError(
                "backbone=timm needs the timm package; pip install 'clarena[timm]'."
            ) from exc
        if not timm.is_model(name):
            close = difflib.get_close_matches(name, timm.list_models(), n=4, cutoff=0.5)
            hint = f"closest: {', '.join(close)}" if close else "none is close"
            raise ValueError(
                f"unknown timm model {name!r} ({hint}); the names are those of timm.list_models()."
            )
        pretrained = weights is not None and str(weights) == PRETRAINED
        try:
            model = timm.create_model(
                name, pretrained=pretrained, num_classes=0, **dict(model_kwargs or {})
            )
        except (OSError, RuntimeError) as exc:  # hub downloads fail with either
            if not pretrained:
                raise
            raise ValueError(
                f"timm's pretrained weights of {name} could not be downloaded "
                f"({str(exc).strip().splitlines()[0]}); without network, save them elsewhere "
                "(torch.save(model.state_dict(), path)) and pass the file as backbone.weights."
            ) from exc
        config: dict[str, Any] = dict(getattr(model, "pretrained_cfg", None) or {})
        classifier = config.get("classifier") or ()
        ignore = (classifier,) if isinstance(classifier, str) else tuple(classifier)
        super().__init__(
            input_shape,
            model,
            classifier=None,
            weights=None if weights is None or pretrained else weights,
            freeze=freeze,
            input_size=input_size,
            ignore_keys=ignore,
            architecture=f"timm {name}",
        )
        self.name: str = name
        """The timm model name."""

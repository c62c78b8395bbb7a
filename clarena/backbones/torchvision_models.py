"""Any classifier of `torchvision.models` as a backbone, from scratch, a weights file or a
torchvision weights name."""

from __future__ import annotations

import difflib
import os
import pickle
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import hub, nn
from torchvision import models

from clarena.backbones.adapter import ModuleBackbone
from clarena.backbones.weights import looks_like_file

AUXILIARY_CLASSIFIERS: tuple[str, ...] = ("aux1", "aux2", "AuxLogits")
"""The auxiliary classifiers of GoogLeNet and Inception v3: removed, their outputs are no
features (their keys in a weights file are skipped)."""


def classification_models() -> list[str]:
    """The names of torchvision's image classifiers (`torchvision.models.list_models`)."""
    return list(models.list_models(module=models))


@contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Make every `torch.load` inside read tensors only (torchvision's builders load downloaded
    weights with `weights_only=False`); torch's `TORCH_FORCE_WEIGHTS_ONLY_LOAD` switch."""
    names = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {name: os.environ.get(name) for name in names}
    os.environ[names[0]] = "1"
    os.environ.pop(names[1], None)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def weights_by_name(name: str, weights: str) -> models.WeightsEnum:
    """The torchvision weights `weights` of model `name`: a member name (`IMAGENET1K_V1`,
    `DEFAULT`) or its full name (`ResNet18_Weights.IMAGENET1K_V1`).

    Raises:
        ValueError: when the model has no such weights, listing those it has.
    """
    enum = models.get_model_weights(name)
    member = weights.rsplit(".", 1)[-1]
    if member not in enum.__members__:
        raise ValueError(
            f"{weights!r} is neither a weights file nor a weights name of torchvision {name} "
            f"(its weights: {', '.join(enum.__members__)}); a file path needs a '/' or a suffix "
            "such as .pth."
        )
    return enum[member]


class TorchvisionBackbone(ModuleBackbone):
    """A classifier of `torchvision.models` whose classifier is replaced by clarena's heads.

    The model is built by torchvision's own builder (`torchvision.models.get_model_builder`), so
    it is exactly torchvision's network; its final classifier (`last_classifier`) and GoogLeNet's
    and Inception's auxiliary classifiers are removed, and everything of `ModuleBackbone` applies
    (grey images repeated to three channels, `freeze`, `input_size`).

    Args:
        input_shape: `(C, H, W)` of one input sample (passed by the pipeline).
        name: a name of `torchvision.models.list_models(module=torchvision.models)`, e.g.
            `"resnet18"`, `"efficientnet_b0"`, `"vit_b_16"`.
        weights: None (random initialisation), a `state_dict` file (any classifier width; read
            with `weights_only=True`), or a torchvision weights name (`"IMAGENET1K_V1"`,
            `"DEFAULT"`), downloaded into torch's hub cache where the network allows.
        freeze: train the heads only (the backbone stays in eval mode, without gradients).
        input_size: `[H, W]` to resize the images to inside the backbone, or None.
        model_kwargs: further arguments of the builder (e.g. `{dropout: 0.2}`).

    Raises:
        ValueError: an unknown model name (with the closest names), unknown weights, a weights
            file of another architecture, a download that failed, or images the model cannot take.
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
        known = classification_models()
        if name not in known:
            close = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
            hint = f"closest: {', '.join(close)}" if close else "none is close"
            raise ValueError(
                f"unknown torchvision model {name!r} ({hint}); the names are those of "
                "torchvision.models.list_models(module=torchvision.models)."
            )
        file = None
        named = None
        if weights is not None:
            if looks_like_file(str(weights)):
                file = weights
            else:
                named = weights_by_name(name, str(weights))
        model = _build(name, named, dict(model_kwargs or {}))
        auxiliary = [a for a in AUXILIARY_CLASSIFIERS if getattr(model, a, None) is not None]
        for attr in auxiliary:
            setattr(model, attr, None)
        if hasattr(model, "aux_logits"):
            setattr(model, "aux_logits", False)  # noqa: B010 (a plain flag, not a submodule)
        super().__init__(
            input_shape,
            model,
            classifier="auto",
            weights=file,
            freeze=freeze,
            input_size=input_size,
            ignore_keys=AUXILIARY_CLASSIFIERS,
            architecture=f"torchvision {name}",
        )
        self.name: str = name
        """The torchvision model name."""


def _build(name: str, weights: models.WeightsEnum | None, kwargs: dict[str, Any]) -> nn.Module:
    builder = models.get_model_builder(name)
    if weights is None:
        return builder(weights=None, **kwargs)
    cache = Path(hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        with _weights_only_loads():
            return builder(weights=weights, **kwargs)
    except pickle.UnpicklingError as exc:  # the cached file holds more than tensors
        cause = str(exc).strip().splitlines()[0]
        raise ValueError(
            f"torchvision weights {weights}: the cached file {cache} cannot be read as tensors "
            f"only ({cause}); delete it to download it again, or pass a weights file."
        ) from exc
    except OSError as exc:  # URLError, connection and file errors alike
        raise ValueError(
            f"torchvision weights {weights} could not be downloaded ({exc}); on a machine "
            f"without network, fetch {weights.url} elsewhere and put it at {cache} or pass it "
            "as backbone.weights=<file>."
        ) from exc

"""Reading a weights file as data and loading it into a backbone, with one-line refusals.

A weights file is a `state_dict` (`torch.save(model.state_dict(), path)`), read with
`torch.load(weights_only=True)` (no pickled code runs), or a `.safetensors` file. The common
wrappings are unwrapped: a dict holding the tensors under `state_dict` or `model`, and the
`module.` prefix that `DistributedDataParallel` adds to every key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

WEIGHTS_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
"""File name endings that mark a `weights` value as a file rather than a weights name."""


def looks_like_file(weights: str) -> bool:
    """Whether a `weights` value names a file: it exists, has a path separator or a weights
    file suffix (anything else is a weights name such as `IMAGENET1K_V1`)."""
    return (
        Path(weights).expanduser().is_file()
        or "/" in weights
        or "\\" in weights
        or weights.lower().endswith(WEIGHTS_SUFFIXES)
    )


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of the weights file `path`, by key.

    Raises:
        ValueError: the file is missing, unreadable, holds code rather than tensors (refused by
            `weights_only=True`), or is not a mapping of names to tensors.
    """
    file = Path(path).expanduser()
    fix = "save the weights with torch.save(model.state_dict(), path)"
    if not file.is_file():
        raise ValueError(
            f"weights file {file} does not exist; pass the path of a state_dict file "
            f"({fix}) as backbone.weights."
        )
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: object = load_file(str(file), device="cpu")
        else:
            loaded = torch.load(file, map_location="cpu", weights_only=True)
    except ImportError as exc:
        raise ValueError(
            f"weights file {file} is a safetensors file but the safetensors package is not "
            "installed; pip install safetensors."
        ) from exc
    except Exception as exc:  # torch.load's refusals and corrupt files alike
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"weights file {file} cannot be read as tensors only ({cause}); {fix}."
        ) from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not loaded:
        raise ValueError(
            f"weights file {file} holds no state_dict (a mapping of names to tensors); {fix}."
        )
    state = {str(k): v for k, v in loaded.items() if isinstance(v, Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def first_mismatch(
    model_state: Mapping[str, Tensor], file_state: Mapping[str, Tensor]
) -> str | None:
    """The first difference between the keys and shapes a model expects and a file holds, in the
    model's order (then the file's), as a phrase; None when the file fits.

    A missing BatchNorm `num_batches_tracked` is no difference (files from before torch 0.4.1
    lack it and `load_state_dict` accepts that)."""
    for key, tensor in model_state.items():
        if key not in file_state:
            if key.endswith("num_batches_tracked"):
                continue
            return f"key {key!r} is missing from the file"
        if tuple(file_state[key].shape) != tuple(tensor.shape):
            return (
                f"key {key!r} has shape {tuple(file_state[key].shape)} in the file but "
                f"{tuple(tensor.shape)} in the model"
            )
    for key in file_state:
        if key not in model_state:
            return f"the file has key {key!r}, which the model lacks"
    return None


def load_weights(
    model: nn.Module, path: str | Path, architecture: str, ignore: Iterable[str] = ()
) -> None:
    """Load the weights file `path` into `model`, every key and shape checked first.

    Args:
        model: the module to load into (its classifier already removed).
        path: the weights file.
        architecture: what the model is, for the message (e.g. `"torchvision resnet18"`).
        ignore: key prefixes of the file to skip (the removed classifier, whatever its number
            of classes, and auxiliary classifiers).

    Raises:
        ValueError: the file cannot be read (`read_state_dict`) or is of another architecture:
            one line naming the file, the first mismatching key or shape and the fix.
    """
    prefixes = tuple(ignore)
    file_state = {k: v for k, v in read_state_dict(path).items() if not _under(k, prefixes)}
    problem = first_mismatch(model.state_dict(), file_state)
    if problem is not None:
        raise ValueError(
            f"weights file {Path(path).expanduser()} does not fit {architecture}: {problem}; "
            f"pass weights saved from {architecture} (torch.save(model.state_dict(), path)) or "
            "set the backbone to the file's architecture."
        )
    model.load_state_dict(file_state, strict=False)

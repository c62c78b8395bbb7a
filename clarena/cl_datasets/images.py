"""Reading single images: a header probe for the checks before training, and decoding to uint8.

Every image becomes a uint8 tensor `(C, H, W)` with `C` = 1 (grey) or 3 (RGB), whatever its file
format or Python type: files are decoded by Pillow (any format it reads; `torchvision.io`'s
decoders are deprecated since torchvision 0.29), and PIL images, numpy arrays and tensors of a
user's `Dataset` are converted without a file. A file that cannot be read raises `ImageError`, whose
message names the file and the fix, also when it is met inside a `DataLoader` worker.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
"""Pillow modes without colour: a source of such images only gets one channel."""


class ImageError(ValueError):
    """An image file that cannot be read or decoded; the message names it and the fix."""


@functools.lru_cache(maxsize=1)
def image_suffixes() -> frozenset[str]:
    """The file suffixes Pillow can open (lower case, with the dot): `.png`, `.jpg`, ..."""
    from PIL import Image

    return frozenset(s.lower() for s in Image.registered_extensions())


def unreadable(path: str | Path, err: BaseException) -> ImageError:
    """The error for an image that cannot be read: its path, the cause, and the fix."""
    cause = " ".join(str(err).split()) or type(err).__name__
    return ImageError(
        f"cannot read image {str(path)!r} ({cause}): replace or delete the file, then start "
        "again (or resume=<run folder>)"
    )


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says: its size and whether it has colour."""

    height: int
    width: int
    grey: bool


_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0..SOF15 markers


def _png_or_jpeg_header(path: str | Path) -> ImageHeader | None:
    """The header of a PNG (IHDR) or baseline/progressive JPEG (SOF), read with a few small
    reads (a quarter of what Pillow's `open` costs); `None` for another or an odd file."""
    with open(path, "rb") as f:
        head = f.read(26)
        if head[:8] == _PNG and head[12:16] == b"IHDR":
            width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
            return ImageHeader(height, width, head[25] in (0, 4)) if width and height else None
        if head[:2] != b"\xff\xd8":
            return None
        f.seek(2)
        while (marker := f.read(4)) and len(marker) == 4 and marker[0] == 0xFF:
            length = int.from_bytes(marker[2:4], "big")
            if marker[1] in _JPEG_FRAMES:
                frame = f.read(6)
                if len(frame) < 6:
                    return None
                height, width = int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big")
                return ImageHeader(height, width, frame[5] == 1) if width and height else None
            f.seek(length - 2, 1)
    return None


def probe(path: str | Path) -> ImageHeader:
    """Read an image file's header only (no pixels): size and colour.

    PNG and JPEG headers are parsed directly; every other file, and any such file that does not
    parse, is opened by Pillow (which names what is wrong with it).

    Raises:
        ImageError: if Pillow cannot identify the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        header = _png_or_jpeg_header(path)
        if header is not None:
            return header
        with Image.open(path) as image:
            width, height = image.size
            return ImageHeader(int(height), int(width), image.mode in GREY_MODES)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise unreadable(path, err) from None


def decode_file(path: str | Path, channels: int) -> torch.Tensor:
    """Decode an image file into uint8 `(channels, H, W)` (grey repeated to RGB, RGB to grey).

    Raises:
        ImageError: naming the file, if it cannot be decoded (truncated, corrupt, unreadable).
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return to_uint8_chw(image, channels)
    except ImageError:
        raise
    except Exception as err:  # any decoder failure is a bad file
        raise unreadable(path, err) from None


def to_uint8_chw(image: Any, channels: int, where: str = "an image") -> torch.Tensor:
    """Convert a PIL image, a numpy array or a tensor to uint8 `(channels, H, W)`.

    Arrays and tensors may be `(H, W)`, `(H, W, C)` or `(C, H, W)` with `C` in 1, 3 or 4 (alpha
    dropped), of an integer type in 0..255: pixels, not already normalised floats.

    Raises:
        ValueError: for another type, layout or value range, naming `where`.
    """
    if hasattr(image, "convert") and hasattr(image, "mode"):  # a PIL image
        if image.mode != ("L" if channels == 1 else "RGB"):
            image = image.convert("L" if channels == 1 else "RGB")
        array = np.array(image)  # one writable copy of the pixels
        x = torch.from_numpy(array).reshape(array.shape[0], array.shape[1], -1)
        return x.permute(2, 0, 1)  # a view: the first transform (or the batch stack) copies it
    x = torch.as_tensor(np.asarray(image)) if not isinstance(image, torch.Tensor) else image
    if x.is_floating_point() or x.dtype == torch.bool or x.is_complex():
        raise ValueError(
            f"{where} is a {x.dtype} tensor: give uint8 pixels (no ToTensor or Normalize in the "
            "dataset's transform; clarena scales and normalises on its own)"
        )
    if x.numel() and (int(x.min()) < 0 or int(x.max()) > 255):
        raise ValueError(f"{where} has pixel values outside 0..255: give uint8 pixels")
    x = x.to(torch.uint8)
    if x.dim() == 2:
        x = x[None]
    elif x.dim() == 3 and x.shape[0] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
        x = x.permute(2, 0, 1)
    if x.dim() != 3 or x.shape[0] not in (1, 3, 4):
        raise ValueError(
            f"{where} has shape {tuple(x.shape)}: give (H, W), (H, W, C) or (C, H, W) images"
        )
    x = x[:3]
    if x.shape[0] == channels:
        return x.contiguous()
    if channels == 3:
        return x.expand(3, -1, -1).contiguous()
    weights = torch.tensor([0.299, 0.587, 0.114])[:, None, None]  # ITU-R 601-2, as Pillow's "L"
    return (x.float() * weights).sum(0, keepdim=True).round_().to(torch.uint8)

"""Helpers of the cl_datasets tests: a tiny source whose pixels encode the class; IDX writers."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
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

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
TEST_NAMES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0, 0, 0x08, ndim, big-endian sizes, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n_train: int, n_test: int, gz: bool) -> dict[str, np.ndarray]:
    """MNIST-layout files: images whose pixel (r, c) is (10 * i + r + c) % 256, classes i % 10."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for (img_name, lbl_name), n in ((IDX_NAMES, n_train), (TEST_NAMES, n_test)):
        i = np.arange(n)[:, None, None]
        rc = np.arange(28)[None, :, None] + np.arange(28)[None, None, :]
        arrays[img_name] = ((10 * i + rc) % 256).astype(np.uint8)
        arrays[lbl_name] = (np.arange(n) % 10).astype(np.uint8)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def folder_image(label: int, index: int, size: int = 6, channels: int = 1) -> np.ndarray:
    """uint8 pixels of image `index` of class `label`: (size, size) or (size, size, 3)."""
    rc = np.arange(size)[:, None] + np.arange(size)[None, :]
    grey = ((40 * label + 3 * index + rc) % 256).astype(np.uint8)
    if channels == 1:
        return grey
    return np.stack([grey, 255 - grey, (grey // 2).astype(np.uint8)], axis=-1)


def write_image_folder(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog", "emu", "fox"),
    per_class: tuple[int, int] = (6, 3),
    size: int = 6,
    channels: int = 1,
    test: bool = True,
    suffix: str = ".png",
) -> Path:
    """ROOT/train/<class>/<i>.png (and ROOT/test/...) of `folder_image` pixels; returns ROOT."""
    from PIL import Image

    for split, count in zip(("train", "test"), per_class, strict=True):
        if split == "test" and not test:
            continue
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                offset = 0 if split == "train" else 100
                pixels = folder_image(label, offset + i, size, channels)
                Image.fromarray(pixels).save(folder / f"{i:03d}{suffix}", quality=95)
    return root


def write_own_source(kind: str, root: Path) -> Path:
    """A small source of the user's of `kind` (`folder`, `npz` or `hf`): 4 classes, 6+3 images
    each, the pixels of `folder_image`; returns the path a config's `root` takes."""
    if kind == "folder":
        return write_image_folder(root)
    labels = {"train": np.repeat(np.arange(4), 6), "test": np.repeat(np.arange(4), 3)}
    images = {
        split: np.stack([folder_image(int(c), i) for i, c in enumerate(y)])
        for split, y in labels.items()
    }
    if kind == "npz":
        root.mkdir(parents=True, exist_ok=True)
        path = root / "data.npz"
        np.savez(
            path,
            train_x=images["train"],
            train_y=labels["train"],
            test_x=images["test"],
            test_y=labels["test"],
            class_names=np.array(["cat", "dog", "emu", "fox"]),
        )
        return path
    import datasets

    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=["cat", "dog", "emu", "fox"]),
        }
    )
    from PIL import Image

    splits = {
        split: datasets.Dataset.from_dict(
            {"image": [Image.fromarray(x) for x in images[split]], "label": labels[split].tolist()},
            features=features,
        )
        for split in ("train", "test")
    }
    datasets.DatasetDict(splits).save_to_disk(str(root))
    return root

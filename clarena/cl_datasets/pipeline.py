"""Per-image `torchvision.transforms.v2` pipelines declared in YAML, and their cached statistics.

A config names transforms by class and keyword arguments (data, not code; no `_target_`):

    transforms:
      train:                       # training images; random transforms draw per image
        - {name: RandomResizedCrop, size: 224}
        - {name: RandomHorizontalFlip}
      test:                        # validation and test images (and training ones when no `train`)
        - {name: Resize, size: 256}
        - {name: CenterCrop, size: 224}

Each runs on uint8 `(C, H, W)` tensors and must keep uint8 pixels; normalisation is not a step of
the list but `normalize_mean` / `normalize_std`, applied to whole batches on the device (computed
when unset, see `cached_stats`). The test pipeline must be deterministic. With no `train` list,
training images go through the test pipeline, which then runs once per image when the source is
decoded into memory.

Statistics of a source (per-channel mean and std of its training images through the test pipeline)
are computed once and cached as JSON under `$XDG_CACHE_HOME/clarena/stats/` (default
`~/.cache/clarena/stats/`), keyed by the SHA-256 of the source's content key (every file's path,
size and modification time) and the pipeline; a cache file is only ever parsed as numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

REFUSED = {
    "Normalize": "set cl_dataset.normalize_mean / normalize_std instead (null: computed)",
    "Lambda": "a config holds data, not code: write a Dataset of your own instead",
    "ToTensor": "images are already uint8 tensors: drop it",
    "ToImage": "images are already uint8 tensors: drop it",
    "PILToTensor": "images are already uint8 tensors: drop it",
    "ToPILImage": "the pipeline works on uint8 tensors: drop it",
    "ToDtype": "pixels stay uint8 until normalisation on the device: drop it",
    "ConvertImageDtype": "pixels stay uint8 until normalisation on the device: drop it",
    "ToPureTensor": "drop it",
    "FiveCrop": "it returns several images per image: not supported",
    "TenCrop": "it returns several images per image: not supported",
    "MixUp": "it mixes whole batches and their labels: not supported per image",
    "CutMix": "it mixes whole batches and their labels: not supported per image",
}
"""v2 transforms a config may not name, and why."""


def _spec_list(spec: Any, where: str) -> list[dict[str, Any]]:
    if spec is None:
        return []
    if isinstance(spec, Mapping) or isinstance(spec, str) or not isinstance(spec, Sequence):
        raise ValueError(f"{where} must be a list of {{name: <v2 transform>, ...}} entries")
    steps = []
    for entry in spec:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ValueError(f"{where}: every entry needs a name, e.g. {{name: Resize, size: 32}}")
        steps.append({str(k): _plain(v) for k, v in entry.items()})
    return steps


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def _build(step: dict[str, Any], where: str) -> Any:
    import torchvision.transforms.v2 as v2

    name = step["name"]
    if name in REFUSED:
        raise ValueError(f"{where}: {name} is not allowed here: {REFUSED[name]}")
    klass = getattr(v2, name, None)
    if not (isinstance(klass, type) and issubclass(klass, v2.Transform)) or name == "Transform":
        raise ValueError(
            f"{where}: {name!r} is not a torchvision.transforms.v2 transform: use a class name "
            "such as Resize, CenterCrop, RandomCrop, RandomResizedCrop, RandomHorizontalFlip"
        )
    kwargs = {k: v for k, v in step.items() if k != "name"}
    if isinstance(kwargs.get("interpolation"), str):
        kwargs["interpolation"] = v2.InterpolationMode[kwargs["interpolation"].upper()]
    try:
        return klass(**kwargs)
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"{where}: {name}({kwargs}) refused its arguments ({err})") from None


class ImagePipeline:
    """The `train` and `test` transform lists of a config, built and checked."""

    def __init__(self, spec: Mapping[str, Any] | None = None) -> None:
        """Build the transforms.

        Args:
            spec: `{"train": [...], "test": [...]}` (either may be missing or null).

        Raises:
            ValueError: an unknown key, name or argument, or a refused transform.
        """
        spec = dict(spec or {})
        unknown = sorted(set(spec) - {"train", "test"})
        if unknown:
            raise ValueError(f"cl_dataset.transforms has unknown keys {unknown}: use train, test")
        self.spec = {k: _spec_list(spec.get(k), f"cl_dataset.transforms.{k}") for k in spec}
        self.test_steps = [
            _build(s, "cl_dataset.transforms.test") for s in self.spec.get("test", [])
        ]
        self.train_steps = [
            _build(s, "cl_dataset.transforms.train") for s in self.spec.get("train", [])
        ]
        self.random_train = "train" in self.spec and spec.get("train") is not None
        """Whether training images have a pipeline of their own (then it runs per epoch)."""

    def __call__(self, x: torch.Tensor, train: bool = False) -> torch.Tensor:
        """Run the training or the test pipeline on one uint8 `(C, H, W)` image."""
        for step in self.train_steps if train and self.random_train else self.test_steps:
            x = step(x)
        return x

    def output_shape(self, channels: int, sizes: Sequence[tuple[int, int]], where: list[str]):
        """The one `(C, H, W)` both pipelines give for images of every size in `sizes`.

        Raises:
            ValueError: when sizes differ without a transform that fixes them (naming two files),
                when the train and test outputs differ, when a step changes the dtype, or when
                the test pipeline is random.
        """
        shapes: dict[tuple[int, ...], str] = {}
        for (h, w), name in zip(sizes, where, strict=True):
            probe = torch.randint(0, 256, (channels, h, w), dtype=torch.uint8)
            outputs = [self(probe, train) for train in (False, True)]
            for train, out in zip(("test", "train"), outputs, strict=True):
                if out.dtype != torch.uint8:
                    raise ValueError(
                        f"cl_dataset.transforms.{train} turns uint8 pixels into {out.dtype}: "
                        "keep pixels uint8 (normalisation happens on the device)"
                    )
            if outputs[0].shape != outputs[1].shape:
                raise ValueError(
                    f"cl_dataset.transforms: train images come out {tuple(outputs[1].shape)}, "
                    f"test images {tuple(outputs[0].shape)}: make both pipelines end at one size"
                )
            with torch.random.fork_rng(devices=[]):  # 16 draws, the same ones in every run
                torch.manual_seed(0)
                random = any(not torch.equal(self(probe), outputs[0]) for _ in range(16))
            if random:
                raise ValueError(
                    "cl_dataset.transforms.test draws random numbers: move random steps to "
                    "transforms.train"
                )
            shapes.setdefault(tuple(outputs[0].shape), name)
        if len(shapes) > 1:
            (a, file_a), (b, file_b) = list(shapes.items())[:2]
            raise ValueError(
                f"images of different sizes ({a[1]}x{a[2]} from {file_a}, {b[1]}x{b[2]} from "
                f"{file_b}): add a resize, e.g. cl_dataset.transforms.test=[{{name: Resize, "
                f"size: [{a[1]}, {a[2]}]}}]"
            )
        c, h, w = next(iter(shapes))
        return (int(c), int(h), int(w))


def stats_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/clarena/stats` (default `~/.cache/clarena/stats`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "clarena" / "stats"


def stats_key(content_key: str, pipeline: ImagePipeline) -> str:
    """The cache key of a source's statistics under a test pipeline."""
    text = json.dumps([content_key, pipeline.spec.get("test", [])], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def read_cached_stats(key: str, channels: int) -> tuple[list[float], list[float]] | None:
    """The cached `(mean, std)` of `key`, or `None` if absent or not `channels` finite numbers."""
    path = stats_cache_dir() / f"{key}.json"
    try:
        data = json.loads(path.read_text())
        mean, std = [float(v) for v in data["mean"]], [float(v) for v in data["std"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = len(mean) == len(std) == channels and all(map(math.isfinite, mean + std))
    return (mean, std) if ok and min(std) > 0 else None


def write_cached_stats(key: str, mean: list[float], std: list[float]) -> None:
    """Store `(mean, std)` under `key` (atomically; an unwritable cache is skipped)."""
    from clarena.core.files import atomic_write_text

    try:
        atomic_write_text(stats_cache_dir() / f"{key}.json", json.dumps({"mean": mean, "std": std}))
    except OSError:
        pass

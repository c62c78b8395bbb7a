"""Batch transforms of the fast path: uint8 images in, normalised float32 images out, on any device.

Everything here works on a whole batch at once, on the device the batch lives on, so training never
touches PIL or per-sample Python code. The order is: task transform (pixel permutation or rotation),
augmentation (random crop with zero padding, horizontal flip), then normalisation
$x \\mapsto (x/255 - \\mu_c)/\\sigma_c$ per channel $c$ of the raw byte values $x$.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Exact per-channel mean and standard deviation of uint8 images scaled to $[0, 1]$.

    Computed from a histogram of the 256 byte values per channel, so it needs no float copy of the
    data: $\\mu_c = \\sum_v h_c(v)\\, v/255 \\,/\\, n_c$ and
    $\\sigma_c^2 = \\sum_v h_c(v) (v/255 - \\mu_c)^2 / n_c$.

    Args:
        images: uint8 `(N, C, H, W)`.

    Returns:
        `(mean, std)`, one float per channel.
    """
    return histogram_stats(channel_histogram(images))


def channel_histogram(images: torch.Tensor) -> torch.Tensor:
    """int64 `(C, 256)`: how often each byte value occurs in each channel of uint8 `(N, C, H, W)`
    images (histograms of several batches add up to the histogram of all)."""
    # bincount on the uint8 values directly: a `.long()` copy first made this 14x slower (0.66 s
    # against 0.047 s for Fashion-MNIST's 60,000 training images on one thread).
    return torch.stack(
        [torch.bincount(images[:, c].reshape(-1), minlength=256) for c in range(images.shape[1])]
    ).cpu()


def histogram_stats(histogram: torch.Tensor) -> tuple[list[float], list[float]]:
    """`(mean, std)` per channel of images in $[0, 1]$ from their `channel_histogram`."""
    hist = histogram.to(torch.float64)
    values = torch.arange(256, dtype=torch.float64) / 255.0
    counts = hist.sum(dim=1).clamp_min(1)
    mean = (hist * values).sum(dim=1) / counts
    var = (hist * (values[None] - mean[:, None]) ** 2).sum(dim=1) / counts
    std = var.sqrt().clamp_min(1e-6)
    return mean.tolist(), std.tolist()


class PixelPermutation:
    """One fixed permutation of the pixel positions per task (shared by all channels).

    Sample $i$ of task $t$ becomes $x'_{c,p} = x_{c,\\pi_t(p)}$ over flattened positions $p$.
    """

    def __init__(self, permutations: torch.Tensor) -> None:
        """Hold the permutations.

        Args:
            permutations: int64 `(num_tasks, H*W)`, row `t-1` the permutation of task `t`.
        """
        self.permutations = permutations.long()
        self._cache: dict[torch.device, torch.Tensor] = {}

    def __call__(self, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        perms = self._cache.setdefault(x.device, self.permutations.to(x.device))
        index = perms[task_ids - 1][:, None, :].expand(b, c, h * w)
        return x.reshape(b, c, h * w).gather(2, index).reshape(b, c, h, w)


class Rotation:
    """One fixed rotation angle per task, about the image centre (bilinear, zero fill)."""

    def __init__(self, angles: Sequence[float]) -> None:
        """Hold the angles.

        Args:
            angles: degrees, counter-clockwise, entry `t-1` for task `t`.
        """
        self.angles = torch.tensor([float(a) for a in angles], dtype=torch.float32)

    def __call__(self, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        radians = self.angles.to(x.device)[task_ids - 1] * (math.pi / 180.0)
        cos, sin = radians.cos(), radians.sin()
        # Output pixel p samples the input at θp; with y pointing down the screen,
        # θ = [[cos α, -sin α], [sin α, cos α]] turns the picture counter-clockwise by α.
        zero = torch.zeros_like(cos)
        theta = torch.stack(
            [torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class BatchTransform:
    """uint8 `(B, C, H, W)` → normalised float32, with the task transform and augmentation."""

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        task_transform: PixelPermutation | Rotation | None = None,
        crop_padding: int = 0,
        horizontal_flip: bool = False,
    ) -> None:
        """Check and store the settings.

        Args:
            mean: per-channel mean of the images scaled to $[0, 1]$.
            std: per-channel standard deviation (positive).
            task_transform: applied first, by each sample's task id.
            crop_padding: pad by this many zero pixels and crop back at a random offset (0: off).
            horizontal_flip: mirror half of the samples at random.
        """
        if any(s <= 0 for s in std):
            raise ValueError(f"normalisation std must be positive, got {list(std)}")
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        self.mean = torch.tensor(list(mean), dtype=torch.float32)
        self.std = torch.tensor(list(std), dtype=torch.float32)
        self.task_transform = task_transform
        self.crop_padding = int(crop_padding)
        self.horizontal_flip = bool(horizontal_flip)
        self._affine: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def augments(self, augment: bool) -> bool:
        """Whether a call with `augment` draws random numbers (else its output is a function of
        the images and task ids alone, and may be computed once)."""
        return augment and (self.crop_padding > 0 or self.horizontal_flip)

    def __call__(
        self,
        x: torch.Tensor,
        task_ids: torch.Tensor,
        generator: torch.Generator | None = None,
        augment: bool = False,
    ) -> torch.Tensor:
        """Transform one batch; `augment` switches the random crop and flip on (training).

        Permutation, crop and flip move bytes, so they run on the uint8 data; rotation needs
        floats. Zero is black in raw and in $[0, 1]$ scale alike, so no step depends on the
        scale, and normalisation is one multiply-add at the end:
        $x \\cdot \\frac{1}{255 \\sigma_c} - \\frac{\\mu_c}{\\sigma_c}$.
        """
        if isinstance(self.task_transform, PixelPermutation):
            x = self.task_transform(x, task_ids)
        elif isinstance(self.task_transform, Rotation):
            x = self.task_transform(x.float(), task_ids)
        if augment and self.crop_padding > 0:
            x = random_crop(x, self.crop_padding, generator)
        if augment and self.horizontal_flip:
            flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if x.device not in self._affine:
            scale = 1.0 / (255.0 * self.std)
            self._affine[x.device] = (
                (-self.mean / self.std).to(x.device)[None, :, None, None],
                scale.to(x.device)[None, :, None, None],
            )
        shift, scale = self._affine[x.device]
        return x.float().mul_(scale).add_(shift)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None) -> torch.Tensor:
    """Zero-pad each image by `padding` and crop it back to its size at a random offset."""
    b, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), device=x.device, generator=generator)
    rows = (dy + torch.arange(h, device=x.device))[:, :, None]  # (B, H, 1)
    cols = (dx + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()

r"""Backward-compatible weight interpolation (BCWI): the update's weights pulled back towards the
old model's, with the interpolation chosen on held-out data.

From Schumann et al., *Backward Compatibility During Data Updates by Weight Interpolation*
(EACL 2024). After the update $h_2$ (weights $\theta_\text{new}$) is trained, the
deployed model becomes

$$ \theta(\alpha) = (1 - \alpha)\, \theta_\text{old} + \alpha\, \theta_\text{new},
   \qquad \alpha \in [0, 1], $$

so $\alpha = 0$ is the old model $h_1$ (no negative flip at all) and $\alpha = 1$ the update. Both
ends are exact: the interpolation is `torch.lerp`, which computes
$\theta_\text{old} + \alpha (\theta_\text{new} - \theta_\text{old})$ for $\alpha < \frac12$ and
$\theta_\text{new} - (1 - \alpha)(\theta_\text{new} - \theta_\text{old})$ otherwise. Tensors that
are not floating point (BatchNorm's batch counter) are taken from $\theta_\text{new}$.

$\alpha$ is chosen on a grid $\alpha_1 < \dots < \alpha_n$ from held-out accuracy $A(\alpha)$ and
negative flip rate $\mathrm{NFR}(\alpha)$ against $h_1$ (`choose_alpha`):

- `"nfr_budget"`: the largest $\alpha$ with $\mathrm{NFR}(\alpha) \le b$ (the budget $b$);
- `"score"`: $\arg\max_\alpha A(\alpha) - \mu\, \mathrm{NFR}(\alpha)$, the largest $\alpha$ among
  ties ($\mu = 0$: the most accurate interpolation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from clarena.cl_algorithms.regularizers._common import check_choice, check_nonnegative

#: How `choose_alpha` picks $\alpha$.
SELECTIONS: tuple[str, ...] = ("nfr_budget", "score")


def check_alphas(alphas: Sequence[float]) -> list[float]:
    """The grid as a sorted list of distinct floats in $[0, 1]$; a ValueError otherwise."""
    values = sorted({float(a) for a in alphas})
    if not values or not all(0.0 <= a <= 1.0 for a in values):
        raise ValueError(f"alphas must be a non-empty list of numbers in [0, 1]; got {alphas!r}")
    return values


def interpolate_weights(
    old: Mapping[str, Tensor], new: Mapping[str, Tensor], alpha: float
) -> dict[str, Tensor]:
    r"""$\theta(\alpha) = (1 - \alpha)\theta_\text{old} + \alpha\theta_\text{new}$, name by name.

    Args:
        old: $\theta_\text{old}$, a state dict (name → tensor).
        new: $\theta_\text{new}$, a state dict with the same names and shapes.
        alpha: $\alpha \in [0, 1]$.

    Returns:
        A new state dict (tensors on `new`'s devices and dtypes).

    Raises:
        ValueError: On $\alpha$ outside $[0, 1]$, or names or shapes that differ.
    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1]; got {alpha!r}")
    if old.keys() != new.keys():
        differ = sorted(set(old) ^ set(new))
        raise ValueError(
            f"the old and new weights have different tensors ({', '.join(differ[:3])}); "
            "interpolate models of the same architecture"
        )
    out: dict[str, Tensor] = {}
    for name, theta_new in new.items():
        theta_old = old[name]
        if theta_old.shape != theta_new.shape:
            raise ValueError(
                f"{name} has shape {tuple(theta_old.shape)} in the old weights but "
                f"{tuple(theta_new.shape)} in the new; interpolate models of the same "
                "architecture"
            )
        if not theta_new.is_floating_point():
            out[name] = theta_new.clone()
            continue
        start = theta_old.to(device=theta_new.device, dtype=theta_new.dtype)
        out[name] = torch.lerp(start, theta_new.detach(), alpha)
    return out


def choose_alpha(
    alphas: Sequence[float],
    accuracies: Sequence[float],
    nfrs: Sequence[float],
    select: str = "nfr_budget",
    max_nfr: float = 0.0,
    nfr_weight: float = 1.0,
) -> float:
    r"""The $\alpha$ of the grid that `select` picks (see the module docstring).

    Args:
        alphas: The grid (sorted increasing).
        accuracies: $A(\alpha)$ on held-out data, one per grid point.
        nfrs: $\mathrm{NFR}(\alpha)$ against $h_1$ on the same data, fractions.
        select: `"nfr_budget"` or `"score"`.
        max_nfr: The budget $b \ge 0$ of `"nfr_budget"`, a fraction.
        nfr_weight: $\mu \ge 0$ of `"score"`.

    Raises:
        ValueError: On lists of different lengths, an unknown `select`, a negative budget or
            weight, or (`"nfr_budget"`) no grid point within the budget.
    """
    select = check_choice("select", select, SELECTIONS)
    max_nfr = check_nonnegative("max_nfr", max_nfr)
    nfr_weight = check_nonnegative("nfr_weight", nfr_weight)
    if not len(alphas) == len(accuracies) == len(nfrs) or not alphas:
        raise ValueError("alphas, accuracies and nfrs must be non-empty and of the same length")
    if select == "nfr_budget":
        within = [a for a, nfr in zip(alphas, nfrs) if nfr <= max_nfr]
        if not within:
            raise ValueError(
                f"no alpha of the grid keeps the held-out NFR within max_nfr={max_nfr} (the "
                f"smallest is {min(nfrs):.4f}); add alpha 0 to the grid or raise max_nfr"
            )
        return max(within)
    best, best_score = alphas[0], -math.inf
    for alpha, accuracy, nfr in zip(alphas, accuracies, nfrs):
        score = accuracy - nfr_weight * nfr
        if score >= best_score:
            best, best_score = alpha, score
    return best

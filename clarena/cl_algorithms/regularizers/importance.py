r"""Per-parameter importances for `ParameterChangeReg`: SI's path integral and MAS's output
sensitivity, with the shape bookkeeping a growing head needs.

**Synaptic Intelligence** (Zenke, Poole & Ganguli, *Continual learning through synaptic
intelligence*, ICML 2017). While a task is trained, every optimizer step $s$ adds to the path
integral of parameter $k$ the loss decrease it is credited with,
$$ \omega_k \mathrel{+}= -\,g_k(s)\,\big(\theta_k(s+1) - \theta_k(s)\big) $$
(`path_integral_step`), $g(s)$ being the gradient the step applied. At the task's end the path
integral is normalised by the squared total change of the parameter over the task
$\Delta_k = \theta_k(\text{end}) - \theta_k(\text{start})$ and a damping $\xi$:
$$ \Omega_k = \frac{\omega_k}{\Delta_k^2 + \xi} $$
(`si_importance`); the importances of the tasks are summed.

**Memory Aware Synapses** (Aljundi et al., *Memory Aware Synapses: Learning what (not) to forget*,
ECCV 2018). The importance is the mean over samples of the absolute gradient of the squared L2
norm of the model's output (the logits),
$$ \Omega_k = \frac1N \sum_{n=1}^N \Big| \frac{\partial\, \lVert f_\theta(x_n) \rVert_2^2}
{\partial \theta_k} \Big| $$
(`output_sensitivity` returns the sum; the caller divides by $N$). No label is needed.

A class-incremental head grows between tasks: `grow_to` extends a stored anchor or importance to
the parameter's new shape, so the penalty never touches the rows a new task added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torch.func import grad, vmap

from clarena.cl_algorithms.regularizers._common import check_nonnegative


@torch.no_grad()
def path_integral_step(
    path_integral: dict[str, Tensor],
    grads: Mapping[str, Tensor | None],
    deltas: Mapping[str, Tensor],
) -> None:
    """Add one optimizer step's $-g \\cdot \\Delta\\theta$ to `path_integral`, in place.

    A step that changed nothing (a skipped mixed-precision step, whose gradient may be infinite)
    adds exactly 0.

    Args:
        path_integral: The running $\\omega$ by name; updated in place.
        grads: The gradient each parameter's step applied, by name (`None`: no gradient, adds 0).
        deltas: $\\theta(s+1) - \\theta(s)$ by name.
    """
    for name, delta in deltas.items():
        g = grads.get(name)
        if g is None:
            continue
        contribution = -(g.to(delta.dtype) * delta)
        path_integral[name] += torch.where(delta == 0, torch.zeros_like(delta), contribution)


def si_importance(
    path_integral: Mapping[str, Tensor], total_change: Mapping[str, Tensor], damping: float
) -> dict[str, Tensor]:
    """SI's importance $\\Omega = \\omega / (\\Delta^2 + \\xi)$ of one task, by name.

    Args:
        path_integral: $\\omega$, the path integral accumulated over the task.
        total_change: $\\Delta$, each parameter's change over the task.
        damping: $\\xi \\ge 0$, finite (bounds $\\Omega$ where $\\Delta \\to 0$).

    Raises:
        ValueError: On a negative or non-finite `damping`, or a name of `path_integral` missing
            from `total_change`.
    """
    damping = check_nonnegative("damping", damping)
    out = {}
    for name, omega in path_integral.items():
        if name not in total_change:
            raise ValueError(f"total_change has no entry {name!r}, which path_integral holds")
        out[name] = omega.detach() / (total_change[name].detach().pow(2) + damping)
    return out


def output_sensitivity(
    output_fn: Callable[..., Tensor],
    params: Mapping[str, Tensor],
    inputs: Tensor,
) -> dict[str, Tensor]:
    """Sum over the samples of $|\\nabla_\\theta \\lVert f_\\theta(x_n) \\rVert_2^2|$, per sample
    (`torch.func.vmap` of `torch.func.grad`), by parameter name.

    Args:
        output_fn: `output_fn(params, x)` → the output of ONE sample `x` (no batch dimension is
            added for you), e.g. a `torch.func.functional_call` of the model on `x.unsqueeze(0)`.
        params: The parameters to differentiate, by name (detached values).
        inputs: A batch of samples `(B, ...)`.

    Returns:
        The summed absolute gradients, shaped like `params`.
    """

    def squared_norm(p: dict[str, Tensor], x: Tensor) -> Tensor:
        return output_fn(p, x).pow(2).sum()

    grads = vmap(grad(squared_norm), in_dims=(None, 0))(dict(params), inputs)
    return {name: g.abs().sum(0) for name, g in grads.items()}


def grow_to(value: Tensor, like: Tensor, fill: Tensor | None = None) -> Tensor:
    """`value` extended to the shape of `like`: its leading block is `value`, the rest comes from
    `fill` (same shape as `like`; zeros when None). A head that grew keeps its old rows in front.

    Raises:
        ValueError: When `value` is larger than `like` in some dimension (a head never shrinks).
    """
    if value.shape == like.shape:
        return value
    if value.dim() != like.dim() or any(v > s for v, s in zip(value.shape, like.shape)):
        raise ValueError(
            f"grow_to: cannot extend shape {tuple(value.shape)} to {tuple(like.shape)}; a "
            "parameter may only grow between tasks."
        )
    out = torch.zeros_like(like) if fill is None else fill.detach().clone()
    out[tuple(slice(0, s) for s in value.shape)] = value.to(out.dtype)
    return out


def crop_to(value: Tensor, shape: torch.Size) -> Tensor:
    """The leading block of `value` with `shape` (a head grown since an anchor of `shape` was
    taken is compared over the classes the anchor has)."""
    if value.shape == shape:
        return value
    return value[tuple(slice(0, s) for s in shape)]

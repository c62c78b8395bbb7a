r"""Penalties on how far parameters move from an anchor: L2 and (online) EWC.

$$ R(\theta) = \text{factor} \cdot \sum_i w_i \, (\theta_i - \theta^*_i)^2 $$

over every element $i$ of every anchored parameter, with $\theta^*$ the anchor (the parameters
after the previous task) and $w_i = 1$ for the L2 penalty or $w_i = F_i$, the diagonal Fisher
information, for Elastic Weight Consolidation (Kirkpatrick et al., *Overcoming catastrophic
forgetting in neural networks*, PNAS 2017). Note there is no $\tfrac12$: `factor` is the whole
coefficient.

Online EWC (Schwarz et al., *Progress & Compress: A scalable framework for continual learning*,
ICML 2018) keeps one running Fisher estimate, so memory stays constant in the number of tasks:
$$ F^*_t = \gamma \, F^*_{t-1} + F_t , $$
`online_fisher_update`. Offline EWC (the original, and van de Ven et al.'s reference) keeps one
anchor and one Fisher per past task and sums one such penalty per task. Computing $F_t$ from a
model (in eval mode, so BatchNorm statistics do not move) is the EWC algorithm's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from clarena.cl_algorithms.regularizers._common import check_nonnegative


def parameter_change_reg(
    params: Mapping[str, Tensor],
    anchors: Mapping[str, Tensor],
    factor: float,
    importances: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Weighted squared distance of `params` from `anchors` (see the module docstring).

    The sum runs over the names in `anchors`: parameters created after the anchor was taken (a
    head for a new task) are not penalised.

    Args:
        params: Current parameters by name (e.g. `dict(model.named_parameters())`).
        anchors: Anchor values $\\theta^*$ by name; detached here.
        factor: Coefficient, finite and `>= 0`.
        importances: Per-element weights $w$ by name (the Fisher for EWC); `None` for L2.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: If an anchored name is missing from `params` or `importances`, or shapes differ.
    """
    factor = check_nonnegative("factor", factor)
    terms = []
    for name, anchor in anchors.items():
        if name not in params:
            raise ValueError(f"params has no entry {name!r}, which anchors holds")
        param = params[name]
        if param.shape != anchor.shape:
            raise ValueError(
                f"anchors[{name!r}] has shape {tuple(anchor.shape)} but params[{name!r}] has "
                f"{tuple(param.shape)}"
            )
        if importances is None:
            terms.append((param - anchor.detach()).pow(2).sum())
            continue
        if name not in importances:
            raise ValueError(f"importances has no entry {name!r}, which anchors holds")
        weight = importances[name]
        if weight.shape != param.shape:
            raise ValueError(
                f"importances[{name!r}] has shape {tuple(weight.shape)} but params[{name!r}] "
                f"has {tuple(param.shape)}"
            )
        terms.append(_WeightedSquaredDistance.apply(param, anchor.detach(), weight.detach()))
    if not terms:
        device = next(iter(params.values())).device if params else None
        return torch.zeros((), device=device)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return factor * total


class _WeightedSquaredDistance(torch.autograd.Function):
    r"""$\sum_i w_i (\theta_i - \theta^*_i)^2$ with gradient $2\, w \odot (\theta - \theta^*)$
    with respect to $\theta$ only.

    The same floats as autograd of `(w * (theta - anchor).pow(2)).sum()`, operation for operation
    (`pow(2)` is `d * d`; `pow`'s and `mul`'s backward give `(g * w) * (2 * d)`, doubling is exact
    and a product's operands commute), in three passes over the parameters backward instead of
    autograd's five and one graph node instead of four: about 3 ms against 1.3 ms a step for the
    2x400 MLP's EWC on one thread. The square and the gradient are formed in place (one new
    tensor each way instead of two): 0.25 ms less a step for that MLP (`benchmarks/README.md`).
    """

    @staticmethod
    def forward(ctx: Any, param: Tensor, anchor: Tensor, weight: Tensor) -> Tensor:
        diff = param - anchor
        ctx.save_for_backward(diff, weight)
        return (diff * diff).mul_(weight).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        diff, weight = ctx.saved_tensors
        return (weight * grad).mul_(diff).mul_(2), None, None


def online_fisher_update(
    old: Mapping[str, Tensor] | None, new: Mapping[str, Tensor], gamma: float
) -> dict[str, Tensor]:
    """Online EWC's running Fisher $F^*_t = \\gamma F^*_{t-1} + F_t$ (Schwarz et al., 2018).

    Args:
        old: The running estimate $F^*_{t-1}$ by name, or `None` before the first task.
        new: The Fisher $F_t$ of the task just finished, by name.
        gamma: Decay $\\gamma \\ge 0$ of the old estimate (1 sums the tasks' Fishers).

    Returns:
        A new dict; names only in `old` keep $\\gamma F^*_{t-1}$, names only in `new` take $F_t$.

    Raises:
        ValueError: On a negative or non-finite `gamma`, or a name whose shapes differ.
    """
    gamma = check_nonnegative("gamma", gamma)
    merged = {name: value.detach().clone() for name, value in new.items()}
    for name, value in (old or {}).items():
        if name not in merged:
            merged[name] = gamma * value.detach()
            continue
        if value.shape != merged[name].shape:
            raise ValueError(
                f"old[{name!r}] has shape {tuple(value.shape)} but new[{name!r}] has "
                f"{tuple(merged[name].shape)}"
            )
        merged[name] = merged[name] + gamma * value.detach()
    return merged


class ParameterChangeReg(nn.Module):
    """L2 / EWC parameter-change penalty as a module; `forward` is `parameter_change_reg`.

    Args:
        factor: Coefficient of the penalty, finite and `>= 0`.
    """

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = check_nonnegative("factor", factor)

    def forward(
        self,
        params: Mapping[str, Tensor],
        anchors: Mapping[str, Tensor],
        importances: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """The penalty: L2 when `importances` is `None`, EWC otherwise."""
        return parameter_change_reg(params, anchors, self.factor, importances)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"

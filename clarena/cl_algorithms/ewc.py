"""Online Elastic Weight Consolidation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.regularizers import ParameterChangeReg, online_fisher_update


def _crop(param: Tensor, shape: torch.Size) -> Tensor:
    """The leading block of `param` with `shape` (a CIL head grown since the anchor was taken)."""
    if param.shape == shape:
        return param
    return param[tuple(slice(0, s) for s in shape)]


def _pad(value: Tensor, shape: torch.Size) -> Tensor:
    """`value` zero-padded to `shape` (the new classes of a grown head had no importance)."""
    if value.shape == shape:
        return value
    out = value.new_zeros(shape)
    out[tuple(slice(0, s) for s in value.shape)] = value
    return out


class EWC(CLAlgorithm):
    """Online EWC (Kirkpatrick et al., PNAS 2017; online variant of Schwarz et al., ICML 2018):

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\lambda \\sum_i F^*_i (\\theta_i - \\theta^*_i)^2,
    \\qquad F^*_t = \\gamma F^*_{t-1} + F_t,$$

    the penalty being `ParameterChangeReg(λ)` with the running Fisher $F^*$ as importances and
    $\\theta^*$ the parameters at the end of the previous task. $F_t$ is the empirical Fisher
    $\\frac1N \\sum_n (\\nabla_\\theta \\log p_\\theta(y_n \\mid x_n))^2$ over the task's training
    data, computed per sample (`torch.func`) with the model in eval mode, so BatchNorm statistics
    and weights do not move; under DDP the ranks' sums are pooled. One Fisher and one anchor are
    kept: memory is constant in the number of tasks. Protected: the backbone and the heads' shared
    parameters (TIL task heads are private to their task; a grown CIL head is compared over the
    classes the anchor has).
    Supports every scenario. Loss terms: `ce`, `ewc`.

    Args:
        ewc_factor: $\\lambda$.
        gamma: $\\gamma$, the decay of the running Fisher (1 sums the tasks' Fishers).
        fisher_num_samples: use at most this many training samples for $F_t$ (None: all).
        fisher_chunk_size: samples per vectorised per-sample-gradient call (bounds memory).
    """

    def __init__(
        self,
        *args: Any,
        ewc_factor: float = 1000.0,
        gamma: float = 1.0,
        fisher_num_samples: int | None = None,
        fisher_chunk_size: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.penalty = ParameterChangeReg(ewc_factor)
        if gamma < 0 or fisher_chunk_size <= 0 or (fisher_num_samples or 1) <= 0:
            raise ValueError(
                f"EWC: gamma must be ≥ 0 and fisher_num_samples, fisher_chunk_size positive; got "
                f"{gamma}, {fisher_num_samples}, {fisher_chunk_size}."
            )
        self.gamma = float(gamma)
        self.fisher_num_samples = fisher_num_samples
        self.fisher_chunk_size = int(fisher_chunk_size)
        self.fisher: dict[str, Tensor] = {}
        """The running Fisher $F^*$ by parameter name (relative to the algorithm)."""
        self.anchors: dict[str, Tensor] = {}
        """The parameters $\\theta^*$ at the end of the previous task."""

    def protected_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters the penalty protects, by name relative to the algorithm."""
        params = {f"backbone.{n}": p for n, p in self.backbone.named_parameters()}
        params.update({f"heads.{n}": p for n, p in self.heads.shared_parameters().items()})
        return params

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy on the batch and the EWC penalty."""
        x, y, task_ids = batch
        logits = self(x, task_ids)
        terms = {"ce": F.cross_entropy(logits, y)}
        if not self.anchors:
            terms["ewc"] = logits.new_zeros(())
            return terms
        if any(a.device != x.device for a in (*self.anchors.values(), *self.fisher.values())):
            self.fisher = {n: f.to(x.device) for n, f in self.fisher.items()}
            self.anchors = {n: a.to(x.device) for n, a in self.anchors.items()}
        current = self.protected_parameters()
        params = {n: _crop(current[n], a.shape) for n, a in self.anchors.items()}
        terms["ewc"] = self.penalty(params, self.anchors, self.fisher)
        return terms

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """Fold the Fisher of the task's training data into $F^*$ and take the new anchor."""
        super().on_task_end(task_id, datamodule)
        new = self.compute_fisher(datamodule.train_dataloader())
        old = {n: _pad(f, new[n].shape) for n, f in self.fisher.items() if n in new}
        self.fisher = online_fisher_update(old or None, new, self.gamma)
        self.anchors = {n: p.detach().clone() for n, p in self.protected_parameters().items()}

    def compute_fisher(self, loader: Any) -> dict[str, Tensor]:
        """Empirical diagonal Fisher of the protected parameters over `loader`, in eval mode."""
        home = self._model_device()
        device = self.fit_device or home
        self.to(device)  # back where it was trained (Lightning leaves it on the CPU after fit)
        params = {n: p.detach() for n, p in self.protected_parameters().items()}

        def sample_loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor, task: int) -> Tensor:
            task_ids = torch.full((1,), task, dtype=torch.long, device=xi.device)
            logits = functional_call(self, p, (xi.unsqueeze(0), task_ids))
            return F.cross_entropy(logits, yi.unsqueeze(0))

        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        count = 0
        was_training = self.training
        self.eval()
        try:
            for x, y, task_ids in loader:
                x, y, task_ids = x.to(device), y.to(device), task_ids.to(device)
                if self.fisher_num_samples is not None:
                    keep = self.fisher_num_samples - count
                    x, y, task_ids = x[:keep], y[:keep], task_ids[:keep]
                for task in torch.unique(task_ids).tolist():
                    rows = task_ids == task
                    for xs, ys in zip(
                        x[rows].split(self.fisher_chunk_size),
                        y[rows].split(self.fisher_chunk_size),
                    ):
                        grads = vmap(grad(sample_loss), in_dims=(None, 0, 0, None))(
                            params, xs, ys, int(task)
                        )
                        for n, g in grads.items():
                            fisher[n] += g.pow(2).sum(0)
                count += x.shape[0]
                if self.fisher_num_samples is not None and count >= self.fisher_num_samples:
                    break
        finally:
            self.train(was_training)
            self.to(home)
        total = torch.tensor(float(count), device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # every rank saw its own shard: pool the sums so all ranks hold the same Fisher
            for f in fisher.values():
                torch.distributed.all_reduce(f)
            torch.distributed.all_reduce(total)
        return {n: (f / total.clamp_min(1.0)).to(home) for n, f in fisher.items()}

    def extra_cl_state(self) -> dict[str, Any]:
        """The running Fisher and the anchor."""
        return {
            "fisher": {n: f.detach().cpu().clone() for n, f in self.fisher.items()},
            "anchors": {n: a.detach().cpu().clone() for n, a in self.anchors.items()},
        }

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore the running Fisher and the anchor."""
        device = self._model_device()
        self.fisher = {n: f.to(device) for n, f in state["fisher"].items()}
        self.anchors = {n: a.to(device) for n, a in state["anchors"].items()}

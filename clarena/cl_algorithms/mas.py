"""Memory Aware Synapses: importance from the sensitivity of the model's output."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.regularizers import ParameterChangeReg
from clarena.cl_algorithms.regularizers.importance import grow_to, output_sensitivity


class MAS(CLAlgorithm):
    """Memory Aware Synapses (Aljundi, Babiloni, Elhoseiny, Rohrbach & Tuytelaars, ECCV 2018):

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\lambda \\sum_k \\Omega_k (\\theta_k - \\theta^*_k)^2,
    \\qquad \\Omega_k \\mathrel{+}= \\frac1N \\sum_{n=1}^N
    \\Big| \\frac{\\partial \\lVert f_\\theta(x_n) \\rVert_2^2}{\\partial \\theta_k} \\Big|,$$

    the penalty being `ParameterChangeReg(λ)` with $\\Omega$ as importances and $\\theta^*$ the
    parameters at the end of the previous task. At the end of each task the importance is measured
    on the task's training inputs (no labels needed), one gradient per sample
    (`regularizers.importance.output_sensitivity`), with the model in eval mode, and added to the
    importance of the earlier tasks (the paper accumulates them). $f_\\theta(x)$ is the output the
    sample's task sees: the logits of its own head (TIL), of every class seen so far (CIL), or of
    the shared head. Under DDP the ranks' sums are pooled. Protected: the backbone and the heads'
    shared parameters (as in `EWC`). Supports every scenario. Loss terms: `ce`, `mas`.

    Args:
        mas_factor: $\\lambda$ (1 in most of the paper's experiments).
        importance_num_samples: use at most this many training samples for $\\Omega$ (None: all).
        importance_chunk_size: samples per vectorised per-sample-gradient call (bounds memory).
    """

    def __init__(
        self,
        *args: Any,
        mas_factor: float = 1.0,
        importance_num_samples: int | None = None,
        importance_chunk_size: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.penalty = ParameterChangeReg(mas_factor)
        if importance_chunk_size <= 0 or (importance_num_samples or 1) <= 0:
            raise ValueError(
                f"MAS: importance_num_samples and importance_chunk_size must be positive; got "
                f"{importance_num_samples} and {importance_chunk_size}."
            )
        self.importance_num_samples = importance_num_samples
        self.importance_chunk_size = int(importance_chunk_size)
        self.importance: dict[str, Tensor] = {}
        """$\\Omega$, the summed importance of the past tasks, by name."""
        self.anchors: dict[str, Tensor] = {}
        """$\\theta^*$, the parameters at the end of the previous task."""

    def protected_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters the penalty protects, by name relative to the algorithm."""
        params = {f"backbone.{n}": p for n, p in self.backbone.named_parameters()}
        params.update({f"heads.{n}": p for n, p in self.heads.shared_parameters().items()})
        return params

    def _follow(self, device: torch.device) -> None:
        for state in (self.importance, self.anchors):
            for name, value in state.items():
                if value.device != device:
                    state[name] = value.to(device)

    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """Extend $\\theta^*$ and $\\Omega$ to parameters that grew (a CIL head): the new rows are
        anchored at their present value with importance 0."""
        super().on_task_start(task_id, datamodule)
        self._follow(self._model_device())
        current = {n: p.detach() for n, p in self.protected_parameters().items()}
        for name in list(self.importance):
            like = current[name]
            self.importance[name] = grow_to(self.importance[name], like)
            self.anchors[name] = grow_to(self.anchors[name], like, fill=like)

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy on the batch and the MAS penalty."""
        x, y, task_ids = batch
        logits = self(x, task_ids)
        terms = {"ce": F.cross_entropy(logits, y)}
        if not self.importance:
            terms["mas"] = logits.new_zeros(())
            return terms
        self._follow(x.device)
        current = self.protected_parameters()
        params = {n: current[n] for n in self.importance}
        terms["mas"] = self.penalty(params, self.anchors, self.importance)
        return terms

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """Add the importance measured on the task's training inputs and take the new anchor."""
        super().on_task_end(task_id, datamodule)
        new = self.compute_importance(datamodule.train_dataloader())
        self._follow(self._model_device())
        self.importance = {
            n: self.importance[n] + new[n] if n in self.importance else new[n] for n in new
        }
        self.anchors = {n: p.detach().clone() for n, p in self.protected_parameters().items()}

    def compute_importance(self, loader: Any) -> dict[str, Tensor]:
        """$\\frac1N \\sum_n |\\nabla_\\theta \\lVert f_\\theta(x_n) \\rVert_2^2|$ of the protected
        parameters over the inputs of `loader` (batches `(x, y, task_ids)`), in eval mode."""
        home = self._model_device()
        device = self.fit_device or home
        self.to(device)  # back where it was trained (Lightning leaves it on the CPU after fit)
        params = {n: p.detach() for n, p in self.protected_parameters().items()}
        total = {n: torch.zeros_like(p) for n, p in params.items()}
        count = 0
        was_training = self.training
        self.eval()
        try:
            for x, _, task_ids in loader:
                x, task_ids = x.to(device), task_ids.to(device)
                if self.importance_num_samples is not None:
                    keep = self.importance_num_samples - count
                    x, task_ids = x[:keep], task_ids[:keep]
                for task in torch.unique(task_ids).tolist():
                    ids = torch.full((1,), int(task), dtype=torch.long, device=device)

                    def output(p: dict[str, Tensor], xi: Tensor, ids: Tensor = ids) -> Tensor:
                        return functional_call(self, p, (xi.unsqueeze(0), ids))

                    for chunk in x[task_ids == task].split(self.importance_chunk_size):
                        for n, s in output_sensitivity(output, params, chunk).items():
                            total[n] += s
                count += x.shape[0]
                if self.importance_num_samples is not None and count >= self.importance_num_samples:
                    break
        finally:
            self.train(was_training)
            self.to(home)
        samples = torch.tensor(float(count), device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for s in total.values():
                torch.distributed.all_reduce(s)
            torch.distributed.all_reduce(samples)
        return {n: (s / samples.clamp_min(1.0)).to(home) for n, s in total.items()}

    def extra_cl_state(self) -> dict[str, Any]:
        """$\\Omega$ and $\\theta^*$."""
        return {
            "mas_importance": {n: v.detach().cpu().clone() for n, v in self.importance.items()},
            "mas_anchors": {n: v.detach().cpu().clone() for n, v in self.anchors.items()},
        }

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore $\\Omega$ and $\\theta^*$."""
        device = self._model_device()
        self.importance = {n: v.to(device) for n, v in state["mas_importance"].items()}
        self.anchors = {n: v.to(device) for n, v in state["mas_anchors"].items()}

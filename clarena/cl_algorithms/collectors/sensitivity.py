"""MAS's importance: the sensitivity of the output's squared norm to each parameter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

from clarena.cl_algorithms.collectors.base import (
    ImportanceCollector,
    Penalty,
    detached_copy,
    move_all,
    on_fit_device_in_eval,
    pooled_mean,
)
from clarena.cl_algorithms.regularizers.importance import grow_to, output_sensitivity


class OutputSensitivityImportance(ImportanceCollector):
    """Memory Aware Synapses' importance (Aljundi et al., ECCV 2018),
    $\\Omega_k \\mathrel{+}= \\frac1N \\sum_{n=1}^N
    \\big| \\partial \\lVert f_\\theta(x_n) \\rVert_2^2 / \\partial \\theta_k \\big|$, measured at
    the end of each task on its training inputs (no labels), one gradient per sample
    (`regularizers.importance.output_sensitivity`), in eval mode, and added to the earlier tasks'.
    $f_\\theta(x)$ is the output the sample's task sees (its head in TIL, every class so far in
    CIL, the shared head otherwise); under DDP the ranks' sums are pooled. The anchor is the
    parameters at the end of the previous task.

    Args:
        importance_num_samples: use at most this many training samples (None: all).
        importance_chunk_size: samples per vectorised per-sample-gradient call (bounds memory).
    """

    def __init__(
        self, importance_num_samples: int | None = None, importance_chunk_size: int = 32
    ) -> None:
        super().__init__()
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

    def penalties(self) -> list[Penalty]:
        """$(\\Omega, \\theta^*)$ (none before the first task's end)."""
        if not self.importance:
            return []
        return [(self.importance, {n: self.anchors[n] for n in self.importance})]

    def follow(self, device: torch.device) -> None:
        """Move $\\Omega$ and $\\theta^*$ to `device`."""
        move_all((self.importance, self.anchors), device)

    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """Extend $\\theta^*$ and $\\Omega$ to parameters that grew (a CIL head): the new rows are
        anchored at their present value with importance 0."""
        self.follow(self.algorithm._model_device())
        current = {n: p.detach() for n, p in self.protected_parameters().items()}
        for name in list(self.importance):
            like = current[name]
            self.importance[name] = grow_to(self.importance[name], like)
            self.anchors[name] = grow_to(self.anchors[name], like, fill=like)

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """Add the importance measured on the task's training inputs and take the new anchor."""
        new = self.compute(datamodule.train_dataloader())
        self.follow(self.algorithm._model_device())
        self.importance = {
            n: self.importance[n] + new[n] if n in self.importance else new[n] for n in new
        }
        self.anchors = {n: p.detach().clone() for n, p in self.protected_parameters().items()}

    def compute(self, loader: Any) -> dict[str, Tensor]:
        """$\\frac1N \\sum_n |\\nabla_\\theta \\lVert f_\\theta(x_n) \\rVert_2^2|$ of the protected
        parameters over the inputs of `loader` (batches `(x, y, task_ids)`), in eval mode."""
        a = self.algorithm
        with on_fit_device_in_eval(a) as (device, home):
            params = {n: p.detach() for n, p in self.protected_parameters().items()}
            total = {n: torch.zeros_like(p) for n, p in params.items()}
            count = 0
            for x, _, task_ids in loader:
                x, task_ids = x.to(device), task_ids.to(device)
                if self.importance_num_samples is not None:
                    keep = self.importance_num_samples - count
                    x, task_ids = x[:keep], task_ids[:keep]
                for task in torch.unique(task_ids).tolist():
                    ids = torch.full((1,), int(task), dtype=torch.long, device=device)

                    def output(p: dict[str, Tensor], xi: Tensor, ids: Tensor = ids) -> Tensor:
                        return functional_call(a, p, (xi.unsqueeze(0), ids))

                    for chunk in x[task_ids == task].split(self.importance_chunk_size):
                        for n, s in output_sensitivity(output, params, chunk).items():
                            total[n] += s
                count += x.shape[0]
                if self.importance_num_samples is not None and count >= self.importance_num_samples:
                    break
        return pooled_mean(total, count, device, home)

    def state_dict(self) -> dict[str, Any]:
        """$\\Omega$ and $\\theta^*$."""
        return {
            "mas_importance": detached_copy(self.importance),
            "mas_anchors": detached_copy(self.anchors),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore $\\Omega$ and $\\theta^*$."""
        device = self.algorithm._model_device()
        self.importance = {n: v.to(device) for n, v in state["mas_importance"].items()}
        self.anchors = {n: v.to(device) for n, v in state["mas_anchors"].items()}

"""EWC's importance: the diagonal Fisher of each task, online (running) or offline (per task)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from clarena.cl_algorithms.collectors.base import (
    ImportanceCollector,
    Penalty,
    detached_copy,
    on_fit_device_in_eval,
    pooled_mean,
)
from clarena.cl_algorithms.regularizers import online_fisher_update
from clarena.cl_algorithms.regularizers._common import check_choice
from clarena.cl_algorithms.regularizers.importance import grow_to

FISHER_LABELS: tuple[str, ...] = ("true", "pred", "all")
"""Which label(s) $\\log p_\\theta(y \\mid x)$ is differentiated at in the Fisher."""


class FisherImportance(ImportanceCollector):
    """The diagonal Fisher over each task's training data, taken at the task's end,
    $F_k = \\frac1N \\sum_n \\mathbb{E}_{c}\\,(\\nabla_\\theta \\log p_\\theta(c \\mid x_n))^2$,
    with the parameters then as the anchor $\\theta^*_k$.

    `fisher_labels` picks $c$: `"true"` the sample's label (the *empirical* Fisher), `"pred"` the
    predicted label, `"all"` every output class weighted by its predicted probability (the exact
    Fisher of the model's predictive distribution), over the outputs the sample's task sees. The
    model runs in eval mode without a kept autograd graph, in chunks of `fisher_chunk_size`, so
    memory is O(parameters × chunk) whatever the number of samples; under DDP the ranks' sums are
    pooled. Online, the running $F^*_t = \\gamma F^*_{t-1} + F_t$ (`online_fisher_update`) and the
    latest anchor make one penalty; offline, every task keeps its own pair.

    Args:
        gamma: $\\gamma \\ge 0$, the decay of the running Fisher (online only).
        online: one running penalty (True) or one per past task (False).
        fisher_labels: `"true"`, `"pred"` or `"all"`.
        fisher_num_samples: use at most this many training samples (None: all).
        fisher_chunk_size: samples per vectorised per-sample-gradient call.
    """

    linear_fisher: bool = True
    """Use the matrix-product Fisher when every protected parameter is an `nn.Linear`'s (set False
    to force the per-sample `torch.func` path; both give the same values)."""

    def __init__(
        self,
        gamma: float = 1.0,
        online: bool = True,
        fisher_labels: str = "true",
        fisher_num_samples: int | None = None,
        fisher_chunk_size: int = 32,
    ) -> None:
        super().__init__()
        if gamma < 0 or fisher_chunk_size <= 0 or (fisher_num_samples or 1) <= 0:
            raise ValueError(
                f"EWC: gamma must be ≥ 0 and fisher_num_samples, fisher_chunk_size positive; got "
                f"{gamma}, {fisher_num_samples}, {fisher_chunk_size}."
            )
        self.gamma = float(gamma)
        self.online = bool(online)
        self.fisher_labels = check_choice("EWC: fisher_labels", fisher_labels, FISHER_LABELS)
        self.fisher_num_samples = fisher_num_samples
        self.fisher_chunk_size = int(fisher_chunk_size)
        self.fishers: list[dict[str, Tensor]] = []
        """Online: `[F*]`, the running Fisher; offline: `[F_1, ..., F_{t-1}]`. By parameter name
        (relative to the algorithm)."""
        self.anchor_sets: list[dict[str, Tensor]] = []
        """The anchors $\\theta^*$ matching `fishers` (online: the end of the previous task)."""

    @property
    def fisher(self) -> dict[str, Tensor]:
        """The latest Fisher: the running $F^*$ (online) or the last task's $F_k$ (offline)."""
        return self.fishers[-1] if self.fishers else {}

    @property
    def anchors(self) -> dict[str, Tensor]:
        """The anchor matching `fisher`: the parameters at the end of the previous task."""
        return self.anchor_sets[-1] if self.anchor_sets else {}

    def penalties(self) -> list[Penalty]:
        """One (Fisher, anchor) pair per stored penalty."""
        return list(zip(self.fishers, self.anchor_sets, strict=True))

    def follow(self, device: torch.device) -> None:
        """Move the Fishers and anchors to `device` (checked once, then a no-op)."""
        stored = [t for s in (*self.fishers, *self.anchor_sets) for t in s.values()]
        if any(t.device != device for t in stored):
            self.fishers = [{n: f.to(device) for n, f in s.items()} for s in self.fishers]
            self.anchor_sets = [{n: a.to(device) for n, a in s.items()} for s in self.anchor_sets]

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """Compute the task's Fisher and take the new anchor: appended (offline) or folded into
        the running Fisher (online)."""
        new = self.compute(datamodule.train_dataloader())
        anchor = {n: p.detach().clone() for n, p in self.protected_parameters().items()}
        if self.online:
            old = {n: grow_to(f, new[n]) for n, f in self.fisher.items() if n in new}
            self.fishers = [online_fisher_update(old or None, new, self.gamma)]
            self.anchor_sets = [anchor]
        else:
            self.fishers.append(new)
            self.anchor_sets.append(anchor)

    def compute(self, loader: Any) -> dict[str, Tensor]:
        """Diagonal Fisher of the protected parameters over `loader`, in eval mode.

        When every protected parameter is the weight or bias of an `nn.Linear` fed 2-D inputs
        (an MLP's), the per-sample squared gradients are summed without being formed: for a layer
        with inputs $a_n$ and output gradients $g_n$ of sample $n$,
        $\\sum_n w_n (g_n a_n^\\top)^{\\odot 2} = (w \\odot G^{\\odot 2})^\\top A^{\\odot 2}$
        (a matrix product; $w_n$ the label's weight). Otherwise per-sample gradients are taken
        with `torch.func` (`vmap` of `grad`).
        """
        with on_fit_device_in_eval(self.algorithm) as (device, home):
            params = self.protected_parameters()
            fisher = {n: torch.zeros_like(p.detach()) for n, p in params.items()}
            layers = self._linear_layers() if self.linear_fisher else None
            count = 0
            with torch.no_grad():
                for x, y, task_ids in loader:
                    x, y, task_ids = x.to(device), y.to(device), task_ids.to(device)
                    if self.fisher_num_samples is not None:
                        keep = self.fisher_num_samples - count
                        x, y, task_ids = x[:keep], y[:keep], task_ids[:keep]
                    for task in torch.unique(task_ids).tolist():
                        rows = task_ids == task
                        xs, ys = x[rows], y[rows]
                        if layers is not None and not self._linear_chunk(
                            layers, fisher, xs, ys, int(task)
                        ):
                            layers = None  # a layer saw other than 2-D inputs
                        if layers is None:
                            for xc, yc in zip(
                                xs.split(self.fisher_chunk_size),
                                ys.split(self.fisher_chunk_size),
                                strict=True,
                            ):
                                self._vmap_chunk(fisher, xc, yc, int(task))
                    count += x.shape[0]
                    if self.fisher_num_samples is not None and count >= self.fisher_num_samples:
                        break
        return pooled_mean(fisher, count, device, home)

    def _linear_layers(self) -> dict[str, nn.Linear] | None:
        """Module path → `nn.Linear` for the protected parameters, or None when one is not a
        Linear's weight or bias."""
        a = self.algorithm
        layers: dict[str, nn.Linear] = {}
        for name in self.protected_parameters():
            path, _, leaf = name.rpartition(".")
            module = a.get_submodule(path) if path else a
            if not isinstance(module, nn.Linear) or leaf not in ("weight", "bias"):
                return None
            layers[path] = module
        return layers

    def _labels_and_weights(self, logits: Tensor, ys: Tensor) -> list[tuple[Tensor, Tensor | None]]:
        """The label(s) each sample's log-likelihood is differentiated at, with their weights."""
        if self.fisher_labels == "true":
            return [(ys, None)]
        if self.fisher_labels == "pred":
            return [(logits.argmax(dim=-1), None)]
        probs = torch.softmax(logits.detach().float(), dim=-1)
        return [(torch.full_like(ys, c), probs[:, c]) for c in range(probs.shape[-1])]

    def _linear_chunk(
        self,
        layers: dict[str, nn.Linear],
        fisher: dict[str, Tensor],
        xs: Tensor,
        ys: Tensor,
        task: int,
    ) -> bool:
        """Add one chunk's Fisher by the matrix-product rule; False (nothing added) when a layer
        saw inputs that are not `(B, in_features)` or ran more than once."""
        seen: dict[str, list[tuple[Tensor, Tensor]]] = {path: [] for path in layers}

        def keep(path: str) -> Any:
            def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
                seen[path].append((inputs[0].detach(), output))

            return hook

        handles = [m.register_forward_hook(keep(path)) for path, m in layers.items()]
        try:
            with torch.enable_grad():
                task_ids = torch.full((xs.shape[0],), task, dtype=torch.long, device=xs.device)
                logits = self.algorithm(xs, task_ids)
        finally:
            for handle in handles:
                handle.remove()
        if any(len(v) != 1 or v[0][0].dim() != 2 for v in seen.values()):
            return False
        paths = list(layers)
        outputs = [seen[path][0][1] for path in paths]
        choices = self._labels_and_weights(logits, ys)
        with torch.enable_grad():
            for i, (labels, weights) in enumerate(choices):
                # the per-sample losses are independent (eval mode), so the gradient of their sum
                # with respect to a layer's output holds every sample's own gradient
                loss = F.cross_entropy(logits, labels, reduction="sum")
                grads = torch.autograd.grad(loss, outputs, retain_graph=i + 1 < len(choices))
                for path, g in zip(paths, grads, strict=True):
                    g2 = g.pow(2)
                    if weights is not None:
                        g2 = g2 * weights.to(g2.dtype)[:, None]
                    inputs = seen[path][0][0]
                    if f"{path}.weight" in fisher:
                        fisher[f"{path}.weight"] += g2.T @ inputs.pow(2)
                    if f"{path}.bias" in fisher:
                        fisher[f"{path}.bias"] += g2.sum(0)
        return True

    def _vmap_chunk(self, fisher: dict[str, Tensor], xs: Tensor, ys: Tensor, task: int) -> None:
        """Add one chunk's squared per-sample gradients, taken with `torch.func`."""
        a = self.algorithm
        protected = set(fisher)
        # Every parameter and buffer enters the functional call detached: no autograd graph is
        # recorded outside the per-sample `grad` (a TIL task head, not protected, would otherwise
        # chain every sample's graph into the sums: memory growing with the sample count).
        state = {n: t.detach() for n, t in (*a.named_parameters(), *a.named_buffers())}
        params = {n: t for n, t in state.items() if n in protected}
        rest = {n: t for n, t in state.items() if n not in protected}

        def nll(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
            task_ids = torch.full((1,), task, dtype=torch.long, device=xi.device)
            logits = functional_call(a, (p, rest), (xi.unsqueeze(0), task_ids))
            return F.cross_entropy(logits, yi.unsqueeze(0))  # -log p(yi | xi)

        per_sample = vmap(grad(nll), in_dims=(None, 0, 0))
        task_ids = torch.full((xs.shape[0],), task, dtype=torch.long, device=xs.device)
        logits = functional_call(a, state, (xs, task_ids))
        for labels, weights in self._labels_and_weights(logits, ys):
            for n, g in per_sample(params, xs, labels).items():
                g2 = g.pow(2)
                if weights is not None:
                    g2 = g2 * weights.to(g2.dtype).view(-1, *([1] * (g2.dim() - 1)))
                fisher[n] += g2.sum(0)

    def state_dict(self) -> dict[str, Any]:
        """The stored Fishers and anchors."""
        return {
            "fishers": [detached_copy(s) for s in self.fishers],
            "anchor_sets": [detached_copy(s) for s in self.anchor_sets],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the stored Fishers and anchors (also from the one-Fisher format of 0.1)."""
        device = self.algorithm._model_device()
        if "fishers" in state:
            fishers, anchor_sets = list(state["fishers"]), list(state["anchor_sets"])
        else:
            fishers = [state["fisher"]] if state["fisher"] else []
            anchor_sets = [state["anchors"]] if state["anchors"] else []
        self.fishers = [{n: f.to(device) for n, f in s.items()} for s in fishers]
        self.anchor_sets = [{n: a.to(device) for n, a in s.items()} for s in anchor_sets]

r"""HAT: hard attention to the task, per-task masks on the MLP's hidden units."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clarena.backbones import MLP
from clarena.cl_algorithms.base import Batch, CLAlgorithm

COSH_CLAMP: float = 50.0
"""Where $s e$ is clamped inside the embedding gradient's $\\cosh$ (float32 overflows past 89)."""


def annealed_s(batch_idx: int, num_batches: int, s_max: float) -> float:
    r"""HAT's annealed scale (eq. 3), $s = \frac{1}{s_{max}} + \big(s_{max} -
    \frac{1}{s_{max}}\big) \frac{b - 1}{B - 1}$ for batch $b = $ `batch_idx + 1` of $B$ in the
    epoch ($s_{max}$ when $B = 1$)."""
    if num_batches <= 1:
        return s_max
    return 1.0 / s_max + (s_max - 1.0 / s_max) * batch_idx / (num_batches - 1)


def capacity_regularizer(mask: Tensor, previous: Tensor | None) -> Tensor:
    r"""HAT's capacity regularizer (eq. 5) over all the masked units,

    $$R = \frac{\sum_i a_i^t \big(1 - a_i^{<t}\big)}{\sum_i \big(1 - a_i^{<t}\big)},$$

    with $a^t$ the current task's mask and $a^{<t}$ the cumulative mask of the earlier tasks
    (`previous`; None on the first task, when $R$ is the mean of $a^t$). The denominator is
    clamped at $10^{-12}$ (a network whose every unit is taken gives $R = 0$).
    """
    free = torch.ones_like(mask) if previous is None else 1.0 - previous.to(mask)
    return (mask * free).sum() / free.sum().clamp_min(1e-12)


class HAT(CLAlgorithm):
    r"""Hard Attention to the Task (Serrà et al., "Overcoming Catastrophic Forgetting with Hard
    Attention to the Task", ICML 2018), on the hidden units of the `MLP` backbone.

    - **Masks.** Task $t$ has an embedding $e_l^t$ per hidden layer $l$; the layer's output
      (after its activation) is multiplied by $a_l^t = \sigma(s\, e_l^t)$. In training $s$ is
      annealed over each epoch's batches from $1/s_{max}$ to $s_{max}$ (`annealed_s`); in
      evaluation $s = s_{max}$. The embeddings start as $\mathcal{N}(0, 1)$ draws and are
      clamped to $[-6, 6]$ (`embedding_clamp`) after every step, as in the authors' code.
    - **Gradient compensation.** With the cumulative mask $a^{<t} = \max(a^{<t-1}, a^{t-1})$ (masks
      at $s_{max}$), the gradient of the weight from unit $j$ of layer $l-1$ to unit $i$ of
      layer $l$ is multiplied by $1 - \min(a_{l,i}^{<t}, a_{l-1,j}^{<t})$ (the input layer
      counts as $a_0 = 1$), a bias's by $1 - a_{l,i}^{<t}$: the weights earlier tasks own get a
      zero gradient. The embedding's gradient is multiplied by
      $\frac{s_{max}}{s} \frac{\cosh(s e) + 1}{\cosh(e) + 1}$ (eq. 6).
    - **Capacity.** The loss adds $c\, R$ (`capacity_regularizer`), which frees units
      the current task does not need.

    The heads are one per task (TIL), so they need no mask. Use an optimizer without weight
    decay: decay would move the owned weights despite their zero gradient. Supports TIL only
    (the task id selects the mask); needs an `MLP` backbone without batch norm (batch norm's
    statistics are shared by every task and no mask protects them). Loss terms: `ce`,
    `capacity`.

    Args:
        s_max: $s_{max}$ (400 in the paper).
        capacity_factor: $c$ (0.75 in the paper).
        embedding_clamp: the embeddings are clamped to `[-embedding_clamp, embedding_clamp]`.
    """

    supported_scenarios: ClassVar[tuple[str, ...]] = ("TIL",)

    def __init__(
        self,
        *args: Any,
        s_max: float = 400.0,
        capacity_factor: float = 0.75,
        embedding_clamp: float = 6.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        name = type(self).__name__
        if not isinstance(self.backbone, MLP):
            raise ValueError(
                f"{name} masks the hidden units of the MLP backbone, got "
                f"{type(self.backbone).__name__}; use backbone=mlp (or mlp_2x400)."
            )
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.backbone.modules()):
            raise ValueError(
                f"{name} needs an MLP without batch norm (its statistics are shared by every task "
                "and no mask protects them); set backbone.batch_norm=false."
            )
        if not (s_max >= 1 and capacity_factor >= 0 and embedding_clamp > 0):
            raise ValueError(
                f"{name}: s_max must be ≥ 1, capacity_factor ≥ 0 and embedding_clamp > 0, got "
                f"{s_max}, {capacity_factor} and {embedding_clamp}."
            )
        self.s_max = float(s_max)
        self.capacity_factor = float(capacity_factor)
        self.embedding_clamp = float(embedding_clamp)
        self.linears: list[nn.Linear] = [m for m in self.backbone.net if isinstance(m, nn.Linear)]
        """The MLP's linear layers, in order (not registered twice: they live in the backbone)."""
        self.units = [layer.out_features for layer in self.linears]
        self.embeddings = nn.ParameterDict()
        """Task id (as a string) → its embedding, all hidden layers' units concatenated."""
        self.cumulative_mask: Tensor | None = None
        """$a^{<t}$ over all hidden units (None before the first task ends)."""
        self._s: float | None = None

    # ------------------------------------------------------------------ masks
    def _current_s(self) -> float:
        return self._s if (self.training and self._s is not None) else self.s_max

    def task_mask(self, task_id: int, s: float | None = None) -> Tensor:
        """$a^t = \\sigma(s e^t)$ over all hidden units (`s` default: $s_{max}$)."""
        return torch.sigmoid((self.s_max if s is None else s) * self.embeddings[str(task_id)])

    def _sample_masks(self, task_ids: Tensor, s: float) -> list[Tensor]:
        """Each sample's task mask, split per hidden layer: `[(B, units_l)]`."""
        tasks = sorted(int(t) for t in torch.unique(task_ids).tolist())
        missing = [t for t in tasks if str(t) not in self.embeddings]
        if missing:
            raise ValueError(f"{type(self).__name__}: no mask for tasks {missing} yet.")
        table = torch.stack([self.embeddings[str(t)] for t in tasks])
        rows = torch.searchsorted(torch.tensor(tasks, device=task_ids.device), task_ids)
        return list(torch.sigmoid(s * table[rows]).split(self.units, dim=1))

    def masked_features(self, x: Tensor, masks: list[Tensor]) -> Tensor:
        """The MLP's forward pass with each hidden layer's output multiplied by its mask."""
        assert isinstance(self.backbone, MLP)
        h, layer = x, -1
        for module in self.backbone.net:
            if isinstance(module, nn.Linear):
                if layer >= 0:
                    h = h * masks[layer]
                layer += 1
            h = module(h)
        return h * masks[layer]

    def forward(self, x: Tensor, task_ids: Tensor) -> Tensor:
        """Logits with each sample's task mask ($s_{max}$ in eval mode, annealed in training)."""
        features = self.masked_features(x, self._sample_masks(task_ids, self._current_s()))
        return self.heads(features, task_ids)

    # ------------------------------------------------------------------ training
    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """The base set-up, then a new embedding $e^t \\sim \\mathcal{N}(0, 1)$ for the task."""
        super().on_task_start(task_id, datamodule)
        if str(task_id) not in self.embeddings:
            embedding = torch.randn(sum(self.units), device=self._model_device())
            self.embeddings[str(task_id)] = nn.Parameter(embedding)
        for t, embedding in self.embeddings.items():  # only the current task's one trains
            embedding.requires_grad_(t == str(task_id))
        self._s = None

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The backbone's and heads' parameters and the current task's embedding."""
        return [*super().trainable_parameters(), self.embeddings[str(self.task_id)]]

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Set the annealed $s$ of this batch, then the base step."""
        num_batches = float(self.trainer.num_training_batches)
        total = int(num_batches) if math.isfinite(num_batches) else 1
        self._s = annealed_s(batch_idx, total, self.s_max)
        return super().training_step(batch, batch_idx)

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy with the masks at the current $s$, and $c\\, R$."""
        x, y, task_ids = batch
        s = self._current_s()
        logits = self.heads(self.masked_features(x, self._sample_masks(task_ids, s)), task_ids)
        reg = capacity_regularizer(self.task_mask(self.task_id, s), self.cumulative_mask)
        return {"ce": F.cross_entropy(logits, y), "capacity": self.capacity_factor * reg}

    def gradient_masks(self) -> list[tuple[Tensor, Tensor]]:
        """Per linear layer, the gradient compensation's factors `(weight, bias)`,
        $1 - \\min(a_{l,i}^{<t}, a_{l-1,j}^{<t})$ and $1 - a_{l,i}^{<t}$ (ones before task 2)."""
        if self.cumulative_mask is None:
            return [(torch.ones_like(m.weight), torch.ones_like(m.bias)) for m in self.linears]
        owned = self.cumulative_mask.to(self.linears[0].weight.device).split(self.units)
        factors = []
        for k, layer in enumerate(self.linears):
            below = owned[k - 1] if k > 0 else torch.ones_like(layer.weight[0])
            factors.append((1.0 - torch.minimum(owned[k][:, None], below[None, :]), 1.0 - owned[k]))
        return factors

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Lightning hook after the backward pass: the gradient compensation (class docstring)."""
        if self.cumulative_mask is not None:
            for layer, (weight, bias) in zip(self.linears, self.gradient_masks(), strict=True):
                if layer.weight.grad is not None:
                    layer.weight.grad.mul_(weight)
                if layer.bias is not None and layer.bias.grad is not None:
                    layer.bias.grad.mul_(bias)
        embedding = self.embeddings[str(self.task_id)]
        if embedding.grad is not None:
            s = self._s if self._s is not None else self.s_max
            e = embedding.detach()
            scale = torch.cosh((s * e).clamp(-COSH_CLAMP, COSH_CLAMP)) + 1
            embedding.grad.mul_(self.s_max / s * scale / (torch.cosh(e) + 1))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Clamp the current embedding to `[-embedding_clamp, embedding_clamp]`."""
        with torch.no_grad():
            self.embeddings[str(self.task_id)].clamp_(-self.embedding_clamp, self.embedding_clamp)

    def on_train_end(self) -> None:
        """Forget the annealed $s$ of the last batch."""
        super().on_train_end()
        self._s = None

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """Fold the task's mask at $s_{max}$ into the cumulative mask."""
        super().on_task_end(task_id, datamodule)
        mask = self.task_mask(task_id).detach()
        previous = self.cumulative_mask
        self.cumulative_mask = mask if previous is None else torch.maximum(previous.to(mask), mask)

    # ------------------------------------------------------------------ checkpoint
    def extra_cl_state(self) -> dict[str, Any]:
        """The task embeddings and the cumulative mask."""
        cumulative = None if self.cumulative_mask is None else self.cumulative_mask.cpu()
        return {
            "hat": {
                "embeddings": {t: e.detach().cpu().clone() for t, e in self.embeddings.items()},
                "cumulative_mask": cumulative,
            }
        }

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `extra_cl_state` saved (in place where an embedding exists already)."""
        saved = state["hat"]
        device = self._model_device()
        for t, value in saved["embeddings"].items():
            if t in self.embeddings:
                with torch.no_grad():
                    self.embeddings[t].copy_(value)
            else:
                self.embeddings[t] = nn.Parameter(value.clone().to(device))
        cumulative = saved["cumulative_mask"]
        self.cumulative_mask = None if cumulative is None else cumulative.clone().to(device)

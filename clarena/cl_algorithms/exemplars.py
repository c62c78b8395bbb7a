r"""Exemplar sets of iCaRL: herding selection, class means, nearest-mean scores and the memory.

iCaRL (Rebuffi et al., "iCaRL: Incremental Classifier and Representation Learning", CVPR 2017)
keeps, per class $y$, an ordered exemplar set $P_y = (p_1, \dots, p_m)$ chosen by *herding*
(Algorithm 4; Welling, "Herding dynamical weights to learn", ICML 2009): with features
$\varphi(x)$ and the class mean $\mu = \frac{1}{n}\sum_{i=1}^{n} \varphi(x_i)$,

$$p_k = \operatorname*{arg\,min}_{x \notin \{p_1, \dots, p_{k-1}\}}
\Big\| \mu - \frac{1}{k}\Big(\varphi(x) + \sum_{j<k} \varphi(p_j)\Big) \Big\|,$$

so that every prefix $P_y[:k]$ is the best greedy approximation of the mean by $k$ samples, and a
set is reduced by keeping a prefix (Algorithm 5). Feature vectors are L2-normalised, and so are
their averages (section 2.1 of the paper; `normalize=True` below).

The nearest-mean-of-exemplars rule (Algorithm 1) predicts
$y^* = \arg\min_y \|\hat\varphi(x) - \mu_y\|$ with $\mu_y$ the normalised mean of the normalised
features of $P_y$; `nearest_mean_scores` returns $-\|\hat\varphi(x) - \mu_y\|^2$, whose argmax is
that class.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

ClassKey = tuple[int, int]
"""A class as `(task id, label)`: unique in TIL (where every task's labels start at 0) and CIL."""


def herding(features: Tensor, m: int, normalize: bool = True) -> Tensor:
    """Indices of `m` exemplars chosen by herding (the module docstring's formula).

    Args:
        features: `(n, D)` features of one class's samples.
        m: how many to choose, `1 ≤ m ≤ n`.
        normalize: L2-normalise the features and their mean first (iCaRL); False uses them as
            given.

    Returns:
        int64 `(m,)` distinct indices in order of choice (a tie goes to the lowest index).
    """
    n = features.shape[0]
    if not 1 <= m <= n:
        raise ValueError(f"herding: m must be in [1, {n}] for {n} samples, got {m}.")
    phi = features.float()
    mean = phi.mean(0)
    if normalize:
        phi = F.normalize(phi, dim=1)
        mean = F.normalize(phi.mean(0), dim=0)
    chosen = torch.empty(m, dtype=torch.long, device=phi.device)
    taken = torch.zeros(n, dtype=torch.bool, device=phi.device)
    running_sum = torch.zeros_like(mean)
    for k in range(1, m + 1):
        distance = (mean - (running_sum + phi) / k).pow(2).sum(1)  # (n,)
        index = distance.masked_fill(taken, float("inf")).argmin()
        chosen[k - 1] = index
        taken[index] = True
        running_sum += phi[index]
    return chosen


def class_mean(features: Tensor) -> Tensor:
    """The normalised mean of the normalised features `(n, D)` of a class: `(D,)`."""
    return F.normalize(F.normalize(features.float(), dim=1).mean(0), dim=0)


def nearest_mean_scores(features: Tensor, means: Tensor) -> Tensor:
    """Scores $-\\|\\hat\\varphi(x) - \\mu_y\\|^2$ `(B, K)` of features `(B, D)` against class means
    `(K, D)`; the argmax of a row is the nearest mean."""
    phi = F.normalize(features.float(), dim=1)
    return -(phi[:, None, :] - means[None].to(phi)).pow(2).sum(-1)


class ExemplarMemory:
    """Ordered exemplar sets per class, drawn from at random by a seeded generator of its own.

    Args:
        seed: seed of the generator that draws replay batches (the global RNG is never touched).
    """

    def __init__(self, seed: int = 0) -> None:
        self.sets: dict[ClassKey, Tensor] = {}
        """`(task, label)` → the class's exemplars `(m, ...)` in herding order (CPU)."""
        self.generator = torch.Generator().manual_seed(int(seed))
        self._flat: tuple[Tensor, Tensor, Tensor] | None = None

    def __len__(self) -> int:
        return sum(len(x) for x in self.sets.values())

    def classes(self) -> list[ClassKey]:
        """The classes held, sorted."""
        return sorted(self.sets)

    def add(self, key: ClassKey, exemplars: Tensor) -> None:
        """Store the exemplar set of class `key` (herding order)."""
        self.sets[(int(key[0]), int(key[1]))] = exemplars.detach().cpu().clone()
        self._flat = None

    def reduce(self, m: int) -> None:
        """Keep the first `m` exemplars of every class (iCaRL's Algorithm 5)."""
        self.sets = {k: x[:m] for k, x in self.sets.items()}
        self._flat = None

    def tensors(self, device: torch.device | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """`(x, y, task_ids)` of every exemplar, classes in sorted order, each in herding order."""
        flat = self._flat
        if flat is None:
            keys = self.classes()
            x = torch.cat([self.sets[k] for k in keys])
            counts = torch.tensor([len(self.sets[k]) for k in keys])
            tasks = torch.tensor([k[0] for k in keys]).repeat_interleave(counts)
            labels = torch.tensor([k[1] for k in keys]).repeat_interleave(counts)
            flat = (x, labels, tasks)
        if device is not None and flat[0].device != device:
            flat = (flat[0].to(device), flat[1].to(device), flat[2].to(device))
        self._flat = flat
        return flat

    def sample(self, n: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor] | None:
        """Up to `n` distinct exemplars drawn uniformly at random, on `device`; None when empty."""
        if not self.sets:
            return None
        x, y, tasks = self.tensors(device)
        pick = torch.randperm(len(x), generator=self.generator)[:n].to(device)
        return x[pick], y[pick], tasks[pick]

    def state_dict(self) -> dict[str, Any]:
        """Weights-only-safe state: the flat tensors (CPU) and the generator state."""
        if not self.sets:
            return {"x": None, "y": None, "task_ids": None, "generator": self.generator.get_state()}
        x, y, tasks = (t.cpu() for t in self.tensors())
        return {"x": x, "y": y, "task_ids": tasks, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`."""
        self.generator.set_state(state["generator"])
        self.sets = {}
        self._flat = None
        if state["x"] is None:
            return
        keys = torch.stack([state["task_ids"], state["y"]], dim=1)
        for key in torch.unique_consecutive(keys, dim=0).tolist():
            rows = (keys == torch.tensor(key)).all(1)
            self.sets[(key[0], key[1])] = state["x"][rows].clone()

"""`ClassMemory`: a fixed number of random training samples per class, stored at each task's end."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from clarena import distributed
from clarena.cl_algorithms.replay_buffer import ReplayBuffer


class ClassMemory:
    """The episodic memory of the reference implementation of van de Ven, Tuytelaars & Tolias
    (2022; GMvandeVen/continual-learning, `train/train_task_based.py`): at the end of each task it
    stores `budget_per_class` training samples of each of the task's classes, drawn uniformly at
    random (a class is the pair (task, label)); only earlier tasks are ever replayed.

    Each class's samples stream once through a `ReplayBuffer` of that capacity, whose reservoir
    sampling keeps a uniform random subset. Under DDP every rank gathers the whole task, so every
    rank's memory is the same. Selection and sampling use the memory's own generator, never the
    global torch RNG.

    With `memory_size` $M$ instead, the memory has a fixed total size shared by the classes seen
    so far: after the task that brings the number of classes to $n$, class $k$ (in (task, label)
    order) keeps $\\lfloor M/n \\rfloor$ samples, one more for the first $M \\bmod n$ classes, the
    older classes cut to a random subset of what they held (the fixed memory of iCaRL, and of
    Avalanche's `ReplayPlugin`, which balances by experience).

    Args:
        budget_per_class: samples kept per class (the reference's `--budget`); None with
            `memory_size`.
        per_task_batches: draw $\\lceil B / n \\rceil$ samples of each of the $n$ stored tasks
            (the reference's per-context replay in Task-IL) instead of $B$ from the whole memory.
        seed: seed of the memory's generator.
        memory_size: the total number of stored samples, shared evenly by the classes seen.
    """

    def __init__(
        self,
        budget_per_class: int | None,
        per_task_batches: bool,
        seed: int = 0,
        memory_size: int | None = None,
    ) -> None:
        if (budget_per_class is None) == (memory_size is None):
            raise ValueError(
                "ClassMemory: give exactly one of budget_per_class and memory_size, got "
                f"{budget_per_class} and {memory_size}."
            )
        if int(budget_per_class or memory_size or 0) <= 0:
            raise ValueError(
                f"budget_per_class and memory_size must be positive, got "
                f"{budget_per_class} and {memory_size}."
            )
        self.budget_per_class = None if budget_per_class is None else int(budget_per_class)
        self.memory_size = None if memory_size is None else int(memory_size)
        self.per_task_batches = bool(per_task_batches)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.tensors: dict[str, Tensor] = {}
        """`x`, `y`, `task_ids` of the stored samples (empty before the first task ends)."""
        self._task_rows: list[Tensor] = []

    def __bool__(self) -> bool:
        return bool(self.tensors)

    @torch.no_grad()
    def add_task(self, train_dataloader: Any) -> None:
        """Store `budget_per_class` random samples of each class in the task's training data
        (with `memory_size`: each class's share, the stored classes cut to theirs)."""
        if self.memory_size is not None:  # no class's share can exceed M / (stored classes + 1)
            capacity = -(-self.memory_size // (self._num_classes() + 1))
        else:
            assert self.budget_per_class is not None
            capacity = self.budget_per_class
        buffers: dict[tuple[int, int], ReplayBuffer] = {}
        for batch in train_dataloader:
            x, y, task_ids = (distributed.gather_rows(t) for t in batch)
            for t, label in torch.stack([task_ids, y], 1).unique(dim=0).tolist():
                key = (int(t), int(label))
                if key not in buffers:
                    seed = int(torch.randint(2**62, (1,), generator=self.generator))
                    buffers[key] = ReplayBuffer(capacity, seed=seed, synced=False)
                rows = (task_ids == t) & (y == label)
                buffers[key].add(x[rows], y[rows], task_ids[rows])
        if self.memory_size is not None:
            self._set(self._shared(buffers))
            return
        parts = [buffers[key].sample(capacity) for key in sorted(buffers)]
        if self.tensors:
            parts.insert(0, self.tensors)
        self._set({k: torch.cat([p[k].cpu() for p in parts if p]) for k in ("x", "y", "task_ids")})

    def _num_classes(self) -> int:
        """The number of (task, label) classes stored."""
        if not self.tensors:
            return 0
        return len(torch.stack([self.tensors["task_ids"], self.tensors["y"]], 1).unique(dim=0))

    def _shared(self, buffers: dict[tuple[int, int], ReplayBuffer]) -> dict[str, Tensor]:
        """The stored and the new classes, each cut to its share of `memory_size`."""
        assert self.memory_size is not None
        names = ("x", "y", "task_ids")
        classes: dict[tuple[int, int], dict[str, Tensor]] = {}
        if self.tensors:
            pairs = torch.stack([self.tensors["task_ids"], self.tensors["y"]], 1).cpu()
            for t, label in pairs.unique(dim=0).tolist():
                rows = (pairs[:, 0] == t) & (pairs[:, 1] == label)
                classes[(int(t), int(label))] = {k: self.tensors[k][rows] for k in names}
        for key in sorted(buffers):
            drawn = buffers[key].sample(buffers[key].capacity)
            assert drawn is not None
            classes[key] = {k: drawn[k].cpu() for k in names}
        keys = sorted(classes)
        share, extra = divmod(self.memory_size, len(keys))
        parts = []
        for i, key in enumerate(keys):
            stored = classes[key]
            keep = torch.randperm(len(stored["y"]), generator=self.generator)
            keep = keep[: share + (i < extra)].sort().values
            parts.append({k: v[keep] for k, v in stored.items()})
        return {k: torch.cat([p[k] for p in parts]) for k in names}

    def sample(self, batch_size: int, device: torch.device) -> dict[str, Tensor]:
        """A replayed batch on `device`: `batch_size` distinct stored samples drawn uniformly, or
        with `per_task_batches` $\\lceil$`batch_size` / number of stored tasks$\\rceil$ of each.

        Raises:
            ValueError: before the memory holds anything (the end of the first task).
        """
        if not self.tensors:
            raise ValueError("the memory is empty until the first task ends.")
        if self.tensors["x"].device != device:
            self.tensors = {k: v.to(device) for k, v in self.tensors.items()}
        if self.per_task_batches:
            per_task = math.ceil(batch_size / len(self._task_rows))
            pick = torch.cat(
                [
                    rows[torch.randperm(len(rows), generator=self.generator)[:per_task]]
                    for rows in self._task_rows
                ]
            )
        else:
            size = len(self.tensors["y"])
            pick = torch.randperm(size, generator=self.generator)[:batch_size]
        pick = pick.to(device)
        return {k: v[pick] for k, v in self.tensors.items()}

    def _set(self, tensors: dict[str, Tensor]) -> None:
        self.tensors = tensors
        task_ids = tensors["task_ids"].cpu() if tensors else torch.zeros(0, dtype=torch.long)
        self._task_rows = [torch.nonzero(task_ids == t).flatten() for t in task_ids.unique()]

    def state_dict(self) -> dict[str, Any]:
        """The stored samples (CPU) and the generator's state."""
        return {
            "memory": {k: v.detach().cpu().clone() for k, v in self.tensors.items()},
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict()`."""
        self._set({k: v.clone() for k, v in state["memory"].items()})
        self.generator.set_state(state["generator"])

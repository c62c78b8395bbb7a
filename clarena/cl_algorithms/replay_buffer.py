"""A fixed-size replay buffer filled by reservoir sampling, with an optional class-balanced policy.

Reservoir sampling (Vitter, "Random sampling with a reservoir", 1985) keeps, after $n$ samples of a
stream went by, each of them with the same probability $\\min(1, M / n)$ for a buffer of size $M$:
the $n$-th sample replaces a uniformly chosen slot with probability $M / n$.

The class-balanced policy is the class-balancing reservoir sampling of Chrysakis & Moens, "Online
continual learning from imbalanced data" (ICML 2020): when the buffer is full, a sample of a class
that is not among the largest ones replaces a random sample of a largest class; a sample of a
largest class $c$ replaces a random stored sample of its own class with probability $m_c / n_c$
($m_c$ stored, $n_c$ seen).

The buffer can also store logits (Dark Experience Replay); logits of different widths (a CIL head
that grew) are kept zero-padded with each sample's width recorded, so that they are compared only
over the classes they cover.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from clarena import distributed

_KEY_STRIDE = 1 << 32  # class key (task, label) = task · 2³² + label


class ReplayBuffer:
    """Reservoir replay buffer of `(x, y, task_ids[, logits])` samples.

    Args:
        capacity: the number of samples kept (> 0).
        class_balanced: use class-balancing reservoir sampling instead of plain reservoir sampling.
        seed: seed of the buffer's own random generator (insertion and sampling never touch the
            global torch RNG, so adding a buffer does not change the rest of a run's randomness).
        per_task_classes: for class balance, a class is the pair (task id, label) rather than the
            label (TIL, where every task's labels start at 0).
        synced: under DDP, gather every rank's batch in `add` (False when the caller offers
            batches that are already the same on every rank).
    """

    def __init__(
        self,
        capacity: int,
        class_balanced: bool = False,
        seed: int = 0,
        per_task_classes: bool = False,
        synced: bool = True,
    ) -> None:
        if int(capacity) <= 0:
            raise ValueError(f"ReplayBuffer: capacity must be a positive int, got {capacity}.")
        self.capacity = int(capacity)
        self.class_balanced = bool(class_balanced)
        self.per_task_classes = bool(per_task_classes)
        self.synced = bool(synced)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._draw = torch.empty(1, dtype=torch.long)  # scratch of `_randint`
        self.num_seen = 0
        self.seen_per_class: dict[int, int] = {}
        self.x: Tensor | None = None
        self.y: Tensor | None = None
        self.task_ids: Tensor | None = None
        self.logits: Tensor | None = None
        self.logit_widths: Tensor | None = None
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def _randint(self, high: int) -> int:
        """A uniform draw from `0..high-1`: the value `torch.randint(high, (1,))` gives from the
        same generator state (both are `random_(0, high)`), into one scratch tensor instead of a
        new one per draw (streaming a task of 60,000 samples through reservoirs draws 60,000)."""
        return int(self._draw.random_(0, high, generator=self.generator))

    def _allocate(self, x: Tensor, logits: Tensor | None) -> None:
        self.x = x.new_zeros((self.capacity, *x.shape[1:]))
        self.y = torch.zeros(self.capacity, dtype=torch.long, device=x.device)
        self.task_ids = torch.zeros(self.capacity, dtype=torch.long, device=x.device)
        if logits is not None:
            # float32 whatever the training precision, so stored logits keep their resolution
            self.logits = torch.zeros(
                (self.capacity, logits.shape[1]), dtype=torch.float32, device=x.device
            )
            self.logit_widths = torch.zeros(self.capacity, dtype=torch.long, device=x.device)

    def _key(self, label: int, task: int) -> int:
        """The class identity used for balancing."""
        return task * _KEY_STRIDE + label if self.per_task_classes else label

    def _stored_keys(self) -> Tensor:
        assert self.y is not None and self.task_ids is not None
        y = self.y[: self.size].cpu()
        return self.task_ids[: self.size].cpu() * _KEY_STRIDE + y if self.per_task_classes else y

    def _slot(self, key: int) -> int | None:
        """The slot the next sample (already counted in `num_seen`) goes to, or None to drop it."""
        if self.size < self.capacity:
            return self.size
        if not self.class_balanced:
            j = self._randint(self.num_seen)
            return j if j < self.capacity else None
        keys = self._stored_keys()
        classes, counts = torch.unique(keys, return_counts=True)
        largest = int(counts.max())
        own = int(counts[classes == key].sum())
        if own < largest:  # not a largest class: evict a random sample of a largest class
            big = classes[counts == largest]
            cls = int(big[self._randint(len(big))])
        else:  # a largest class: keep with probability m_c / n_c, evicting its own kind
            if self._randint(self.seen_per_class[key]) >= own:
                return None
            cls = key
        members = torch.nonzero(keys == cls).flatten()
        return int(members[self._randint(len(members))])

    @torch.no_grad()
    def add(
        self,
        x: Tensor,
        y: Tensor,
        task_ids: Tensor,
        logits: Tensor | None = None,
        logit_widths: Tensor | None = None,
    ) -> None:
        """Offer a batch to the buffer, one sample at a time in order.

        Under DDP the batches of all ranks are gathered first and offered in rank order, so every
        rank's buffer holds the same samples (its generator is seeded alike everywhere); every
        rank must then call `add` the same number of times.

        Args:
            x: inputs `(B, ...)`.
            y: int64 labels `(B,)`.
            task_ids: int64 task ids `(B,)`.
            logits: optional logits `(B, W)` to store with the samples (detached).
            logit_widths: how many leading columns of each row of `logits` are meaningful
                (default: all `W`).
        """
        if self.synced and distributed.world_size() > 1:
            x, y, task_ids = (distributed.gather_rows(t) for t in (x, y, task_ids))
            if logits is not None:
                logits = distributed.gather_rows(logits)
            if logit_widths is not None:
                logit_widths = distributed.gather_rows(logit_widths)
        if self.x is None:
            self._allocate(x, logits)
        elif self.x.device != x.device:
            self.to(x.device)
        assert self.x is not None and self.y is not None and self.task_ids is not None
        if (logits is None) != (self.logits is None):
            raise ValueError("ReplayBuffer: store logits with every batch or with none.")
        if logits is not None:
            assert self.logits is not None and self.logit_widths is not None
            if logits.shape[1] > self.logits.shape[1]:  # the head grew: widen, zero-padded
                pad = self.logits.new_zeros((self.capacity, logits.shape[1] - self.logits.shape[1]))
                self.logits = torch.cat([self.logits, pad], dim=1)
            if logit_widths is None:
                logit_widths = torch.full_like(y, logits.shape[1])
            widths = logit_widths.tolist()
        labels, tasks = y.tolist(), task_ids.tolist()
        for i, label in enumerate(labels):
            self.num_seen += 1
            key = self._key(label, tasks[i])
            self.seen_per_class[key] = self.seen_per_class.get(key, 0) + 1
            slot = self._slot(key)
            if slot is None:
                continue
            self.x[slot] = x[i].to(self.x.device, self.x.dtype)
            self.y[slot] = label
            self.task_ids[slot] = task_ids[i]
            if logits is not None:
                assert self.logits is not None and self.logit_widths is not None
                width = int(widths[i])
                self.logits[slot].zero_()
                self.logits[slot, :width] = logits[i, :width].to(self.logits.dtype)
                self.logit_widths[slot] = width
            self.size = max(self.size, slot + 1)

    def to(self, device: torch.device | str) -> ReplayBuffer:
        """Move the stored tensors to `device` (the generator stays on the CPU)."""
        for name in ("x", "y", "task_ids", "logits", "logit_widths"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        return self

    def sample(self, batch_size: int, max_task: int | None = None) -> dict[str, Tensor] | None:
        """Draw up to `batch_size` distinct stored samples uniformly at random.

        Args:
            batch_size: the number of samples wanted.
            max_task: draw only among samples of tasks `≤ max_task`.

        Returns:
            A dict with `x`, `y`, `task_ids` (and `logits`, `logit_widths` when logits are stored),
            or None when no stored sample qualifies.
        """
        if self.size == 0:
            return None
        assert self.x is not None and self.y is not None and self.task_ids is not None
        pool = torch.arange(self.size)
        if max_task is not None:
            pool = pool[self.task_ids[: self.size].cpu() <= max_task]
        if len(pool) == 0:
            return None
        pick = pool[torch.randperm(len(pool), generator=self.generator)[:batch_size]]
        pick = pick.to(self.x.device)
        out = {"x": self.x[pick], "y": self.y[pick], "task_ids": self.task_ids[pick]}
        if self.logits is not None and self.logit_widths is not None:
            out["logits"] = self.logits[pick]
            out["logit_widths"] = self.logit_widths[pick]
        return out

    def state_dict(self) -> dict[str, Any]:
        """Weights-only-safe state (tensors, ints, bools, dicts): loads with
        `torch.load(..., weights_only=True)`."""

        def cut(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[: self.size].detach().cpu().clone()

        return {
            "capacity": self.capacity,
            "class_balanced": self.class_balanced,
            "per_task_classes": self.per_task_classes,
            "num_seen": self.num_seen,
            "seen_per_class": dict(self.seen_per_class),
            "size": self.size,
            "x": cut(self.x),
            "y": cut(self.y),
            "task_ids": cut(self.task_ids),
            "logits": cut(self.logits),
            "logit_widths": cut(self.logit_widths),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from `state_dict()`."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"ReplayBuffer: checkpoint capacity {state['capacity']} ≠ configured "
                f"{self.capacity}; use the run's original buffer size."
            )
        self.class_balanced = bool(state["class_balanced"])
        self.per_task_classes = bool(state.get("per_task_classes", False))
        self.num_seen = int(state["num_seen"])
        self.seen_per_class = {int(k): int(v) for k, v in state["seen_per_class"].items()}
        self.size = int(state["size"])
        self.generator.set_state(state["generator"])
        self.x = self.y = self.task_ids = self.logits = self.logit_widths = None
        if state["x"] is None:
            return
        self._allocate(state["x"], state["logits"])
        assert self.x is not None and self.y is not None and self.task_ids is not None
        self.x[: self.size] = state["x"]
        self.y[: self.size] = state["y"]
        self.task_ids[: self.size] = state["task_ids"]
        if state["logits"] is not None:
            assert self.logits is not None and self.logit_widths is not None
            self.logits[: self.size] = state["logits"]
            self.logit_widths[: self.size] = state["logit_widths"]

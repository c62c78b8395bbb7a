"""The three head kinds and `make_heads`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clarena.core.scenarios import SCENARIOS

PAD_LOGIT: float = -1.0e4
"""Logit given to the columns a sample does not have (a TIL batch mixing tasks with different
numbers of classes). Finite, so that no `0 · ∞` appears in a loss, and low enough that its softmax
probability is exactly 0 in float32, float16 and bfloat16."""


class Heads(nn.Module):
    """Common interface of the heads.

    Attributes:
        in_features: the feature width the heads take.
        task_classes: `task_id → num_classes` as passed to `setup_task`, in order.
    """

    scenario: str = ""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        if in_features <= 0:
            raise ValueError(
                f"{type(self).__name__}: in_features must be positive, got {in_features}."
            )
        self.in_features = int(in_features)
        self.task_classes: dict[int, int] = {}

    def setup_task(self, task_id: int, num_classes: int) -> None:
        """Prepare the head for task `task_id` with `num_classes` logits (the dataset's
        `output_dim(task_id)`). Setting up a task again with the same size does nothing."""
        raise NotImplementedError

    def forward(self, features: Tensor, task_ids: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Map features `(B, in_features)` of samples from tasks `task_ids` `(B,)` to logits."""
        raise NotImplementedError

    def class_range(self, task_id: int) -> tuple[int, int]:
        """The columns `[start, end)` of `forward`'s logits that hold task `task_id`'s classes."""
        raise NotImplementedError

    def num_logits(self, task_ids: Tensor) -> Tensor:
        """For each sample, how many leading columns of `forward`'s logits are meaningful now."""
        raise NotImplementedError

    def knows(self, task_id: int) -> bool:
        """Whether the heads can predict task `task_id` now (set up; any task for a shared head)."""
        return task_id in self.task_classes

    def blank(self) -> Heads:
        """A new head of the same kind and settings with no task set up (to load a saved one)."""
        heads = type(self)(self.in_features)
        heads.scenario = self.scenario
        return heads

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """Parameters used by every task (what a parameter regulariser such as EWC protects);
        per-task heads are private to their task and are not included."""
        return dict(self.named_parameters())

    def _check(self, task_id: int, num_classes: int) -> None:
        if task_id < 1:
            raise ValueError(f"{type(self).__name__}: tasks are numbered from 1, got {task_id}.")
        if num_classes <= 0:
            raise ValueError(
                f"{type(self).__name__}: num_classes must be positive, got {num_classes}."
            )
        if task_id not in self.task_classes and self.task_classes:
            expected = max(self.task_classes) + 1
            if task_id != expected:
                raise ValueError(
                    f"{type(self).__name__}: tasks must be set up in order; expected task "
                    f"{expected}, got {task_id}."
                )

    def _device(self) -> torch.device | None:
        p = next(self.parameters(), None)
        return None if p is None else p.device


class TaskHeads(Heads):
    """One linear head per task (task-incremental learning), selected by the batch's task ids.

    A batch mixing tasks (replay, joint training) gets logits as wide as its widest task; the
    columns a sample's task does not have hold `PAD_LOGIT`.
    """

    scenario = "TIL"

    def __init__(self, in_features: int) -> None:
        super().__init__(in_features)
        self.heads = nn.ModuleDict()

    def setup_task(self, task_id: int, num_classes: int) -> None:
        """Add the linear head of task `task_id`."""
        self._check(task_id, num_classes)
        if task_id in self.task_classes:
            if self.task_classes[task_id] != num_classes:
                raise ValueError(
                    f"TaskHeads: task {task_id} already has {self.task_classes[task_id]} classes, "
                    f"got {num_classes}."
                )
            return
        head = nn.Linear(self.in_features, num_classes)
        device = self._device()
        self.heads[str(task_id)] = head if device is None else head.to(device)
        self.task_classes[task_id] = num_classes

    def head(self, features: Tensor, task_id: int) -> Tensor:
        """Logits `(B, C_t)` of task `task_id`'s head for every sample, whatever its task."""
        if task_id not in self.task_classes:
            raise ValueError(
                f"TaskHeads: no head for task {task_id}; set up tasks {sorted(self.task_classes)}."
            )
        return self.heads[str(task_id)](features)

    def forward(self, features: Tensor, task_ids: Tensor) -> Tensor:
        """Logits of each sample's own task head, padded with `PAD_LOGIT` to the widest task."""
        tasks = [int(t) for t in torch.unique(task_ids).tolist()]
        if len(tasks) == 1:
            return self.head(features, tasks[0])
        width = max(self.task_classes.get(t, 0) for t in tasks)
        logits = features.new_full((features.shape[0], width), PAD_LOGIT)
        for t in tasks:
            rows = task_ids == t
            out = self.head(features[rows], t)
            logits[rows, : out.shape[1]] = out.to(logits.dtype)
        return logits

    def class_range(self, task_id: int) -> tuple[int, int]:
        """Columns `[0, C_t)`: each task's logits start at column 0."""
        return 0, self.task_classes[task_id]

    def num_logits(self, task_ids: Tensor) -> Tensor:
        """`C_t` of each sample's task."""
        table = torch.zeros(max(self.task_classes) + 1, dtype=torch.long)
        for t, n in self.task_classes.items():
            table[t] = n
        return table.to(task_ids.device)[task_ids]

    def shared_parameters(self) -> dict[str, nn.Parameter]:
        """None: every task head is private to its task."""
        return {}


class GrowingHead(Heads):
    """One linear layer over every class seen so far (class-incremental learning).

    `setup_task(t, n)` takes `n` = the total number of classes after task t and grows the layer,
    copying the old classes' weights and biases unchanged; task t owns columns
    `[n_{t-1}, n_t)`. With `num_outputs` the layer has that many columns from the first task on
    (every class of the sequence active, as van de Ven et al.'s `--active-classes=all`): the
    columns of later tasks exist, and are trained as negatives, before their task.
    """

    scenario = "CIL"

    def __init__(self, in_features: int, num_outputs: int | None = None) -> None:
        """Build an empty head; `setup_task` creates the layer.

        Args:
            in_features: the feature width.
            num_outputs: the layer's least width, from the first task on (`None`: the classes
                seen so far).
        """
        super().__init__(in_features)
        if num_outputs is not None and (isinstance(num_outputs, bool) or num_outputs < 1):
            raise ValueError(f"GrowingHead: num_outputs must be positive, got {num_outputs!r}.")
        self.num_outputs = num_outputs
        self.linear: nn.Linear | None = None

    def blank(self) -> GrowingHead:
        """A new head with the same `num_outputs` and no task set up."""
        heads = GrowingHead(self.in_features, self.num_outputs)
        heads.scenario = self.scenario
        return heads

    def setup_task(self, task_id: int, num_classes: int) -> None:
        """Grow the layer to `num_classes` outputs (the total after task `task_id`)."""
        self._check(task_id, num_classes)
        if task_id in self.task_classes:
            if self.task_classes[task_id] != num_classes:
                raise ValueError(
                    f"GrowingHead: task {task_id} was set up with {self.task_classes[task_id]} "
                    f"classes in total, got {num_classes}."
                )
            return
        seen = max(self.task_classes.values(), default=0)
        if num_classes < seen:
            raise ValueError(
                f"GrowingHead: the class count cannot shrink ({seen} → {num_classes}); pass the "
                "total number of classes after the task (the dataset's output_dim)."
            )
        old = self.linear
        old_n = 0 if old is None else old.out_features
        width = max(num_classes, self.num_outputs or 0)
        if old is None or width > old_n:
            new = nn.Linear(self.in_features, width)
            if old is not None:
                new = new.to(device=old.weight.device, dtype=old.weight.dtype)
                with torch.no_grad():
                    new.weight[:old_n].copy_(old.weight)
                    new.bias[:old_n].copy_(old.bias)
            self.linear = new
        self.task_classes[task_id] = num_classes

    def forward(self, features: Tensor, task_ids: Tensor) -> Tensor:
        """Logits over every class seen so far (or all `num_outputs`); `task_ids` are not
        needed."""
        if self.linear is None:
            raise ValueError("GrowingHead: call setup_task before forward.")
        return self.linear(features)

    def class_range(self, task_id: int) -> tuple[int, int]:
        """Columns `[n_{t-1}, n_t)`."""
        return self.task_classes.get(task_id - 1, 0), self.task_classes[task_id]

    def num_logits(self, task_ids: Tensor) -> Tensor:
        """The layer's current width (the classes seen so far, or `num_outputs`), for every
        sample."""
        n = 0 if self.linear is None else self.linear.out_features
        return torch.full_like(task_ids, n, dtype=torch.long)


class SharedHead(Heads):
    """One linear layer shared by every task (domain- and data-incremental learning)."""

    scenario = "DIL"

    def __init__(self, in_features: int) -> None:
        super().__init__(in_features)
        self.linear: nn.Linear | None = None

    def setup_task(self, task_id: int, num_classes: int) -> None:
        """Create the layer on the first task; later tasks must keep the same number of classes."""
        self._check(task_id, num_classes)
        if self.linear is None:
            self.linear = nn.Linear(self.in_features, num_classes)
        elif self.linear.out_features != num_classes:
            raise ValueError(
                f"SharedHead: every task shares {self.linear.out_features} classes, task {task_id} "
                f"asks for {num_classes}."
            )
        self.task_classes[task_id] = num_classes

    def forward(self, features: Tensor, task_ids: Tensor) -> Tensor:
        """Logits over the shared classes; `task_ids` are not needed."""
        if self.linear is None:
            raise ValueError("SharedHead: call setup_task before forward.")
        return self.linear(features)

    def class_range(self, task_id: int) -> tuple[int, int]:
        """All the shared classes (for any task, also one not trained yet)."""
        if self.linear is None:
            raise ValueError("SharedHead: call setup_task before class_range.")
        return 0, self.linear.out_features

    def knows(self, task_id: int) -> bool:
        """Every task, once the shared layer exists."""
        return self.linear is not None

    def num_logits(self, task_ids: Tensor) -> Tensor:
        """The shared number of classes, for every sample."""
        n = 0 if self.linear is None else self.linear.out_features
        return torch.full_like(task_ids, n, dtype=torch.long)


def make_heads(scenario: str, in_features: int, num_outputs: int | None = None) -> Heads:
    """Build the heads for `scenario`: `TaskHeads` (TIL), `GrowingHead` (CIL), `SharedHead` (DIL,
    DataIL). `num_outputs` is the CIL head's width from the first task (the dataset's
    `head_outputs`; `None`: it grows with the classes seen so far).

    Raises:
        ValueError: for an unknown scenario, or `num_outputs` outside CIL.
    """
    kinds: dict[str, type[Heads]] = {
        "TIL": TaskHeads,
        "CIL": GrowingHead,
        "DIL": SharedHead,
        "DataIL": SharedHead,
    }
    if scenario not in kinds:
        raise ValueError(f"make_heads: unknown scenario {scenario!r}; choose one of {SCENARIOS}.")
    if num_outputs is not None and scenario != "CIL":
        raise ValueError(
            f"make_heads: num_outputs sets the CIL head's width; scenario {scenario!r} has none."
        )
    heads = (
        GrowingHead(in_features, num_outputs) if scenario == "CIL" else kinds[scenario](in_features)
    )
    heads.scenario = scenario
    return heads

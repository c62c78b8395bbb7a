r"""iCaRL: herding exemplars, binary cross-entropy with distillation, nearest-mean classifier."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from clarena import distributed
from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.exemplars import (
    ExemplarMemory,
    class_mean,
    herding,
    nearest_mean_scores,
)
from clarena.heads.heads import PAD_LOGIT


def bce_distillation(
    logits: Tensor,
    y: Tensor,
    teacher_logits: Tensor,
    old: Tensor,
    valid: Tensor,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    r"""iCaRL's loss (Algorithm 3), split into its classification and distillation parts.

    Targets are $t_{ik} = \sigma(\tilde z_{ik} / T)$ on the old columns (the classes the model
    before the task knew; $\tilde z$ its logits) and $t_{ik} = [y_i = k]$ on the others; with
    $\ell_{ik} = -t_{ik} \log \sigma(z_{ik}) - (1 - t_{ik}) \log(1 - \sigma(z_{ik}))$,

    $$\mathcal{L}_{\mathrm{bce}} = \frac{1}{B} \sum_i \sum_{k\ \mathrm{valid,\ new}} \ell_{ik},
    \qquad \mathcal{L}_{\mathrm{distill}} = \frac{1}{B} \sum_i \sum_{k\ \mathrm{old}} \ell_{ik}.$$

    Args:
        logits: `(B, K)` logits $z$ of the model being trained.
        y: int64 `(B,)` labels (columns of `logits`).
        teacher_logits: `(B, K)` logits $\tilde z$ of the old model; read only where `old`.
        old: bool `(B, K)`: the columns whose target is distilled.
        valid: bool `(B, K)`: the columns that exist for the sample (False on padding).
        temperature: $T$ (1 in Rebuffi et al.).

    Returns:
        `(bce, distillation)`, two scalars whose sum is iCaRL's loss.
    """
    z = logits.float()
    targets = F.one_hot(y, z.shape[1]).to(z)
    distilled = torch.sigmoid(teacher_logits.detach().float() / temperature)
    targets = torch.where(old, distilled, targets)
    loss = F.binary_cross_entropy_with_logits(z, targets, reduction="none")
    batch = z.shape[0]
    new = valid & ~old
    return (loss * new).sum() / batch, (loss * old).sum() / batch


class ICaRL(CLAlgorithm):
    r"""iCaRL (Rebuffi et al., "iCaRL: Incremental Classifier and Representation Learning", CVPR
    2017): exemplar replay with binary cross-entropy and distillation of the old classes' outputs
    (`bce_distillation`), exemplar sets chosen by herding (`clarena.cl_algorithms.exemplars`), and
    classification by the nearest mean of exemplars at test time.

    - **Training.** Rebuffi et al. (and van de Ven et al.'s reference) train on the task's $N$
      samples and the $|M|$ exemplars together; here each batch of $B$ of the task's samples is
      joined by $k$ exemplars drawn at random from the memory, $k = B |M| / N$ in expectation
      (stochastic rounding), which gives the exemplars the same share of a batch
      ($k / (B + k) = |M| / (N + |M|)$); `replay_batch_size` fixes $k$ instead. The
      old columns are those of the model h1 from before the task: CIL, the classes of earlier
      tasks, for every sample; TIL, the whole head of an exemplar's (earlier) task, and none of
      the current task's head.
    - **Exemplars.** When a task's training ends, every class keeps $m$ exemplars (`memory_size`
      divided by the classes seen so far, or `exemplars_per_class`): old sets are cut to their
      first $m$, each new class gets $m$ by herding over one pass of the task's training loader
      (its transforms included), in the model's eval mode. The class means of the exemplars are
      then computed with that same model and kept until the next task.
    - **Test.** The scores are $-\|\hat\varphi(x) - \mu_y\|^2$ in the heads' layout (CIL: every
      class so far; TIL: the sample's task's classes), so the argmax is the nearest mean of
      exemplars; `nearest_mean=False` tests with the heads instead.

    Supports CIL (its setting) and TIL; DIL and DataIL are refused: their tasks share the
    classes, so no class is "old" whose outputs could be distilled. Loss terms: `bce`,
    `distillation`.

    Args:
        memory_size: total exemplars $K$ (Rebuffi et al.), $m = \lfloor K / \#\mathrm{classes}
            \rfloor$; null when `exemplars_per_class` is set.
        exemplars_per_class: a fixed $m$ per class (the reference's budget per class), or null.
        replay_batch_size: a fixed $k$ (default null: $k = B |M| / N$, as if the exemplars were
            part of the task's training set).
        temperature: $T$ of the distillation targets $\sigma(\tilde z / T)$ (1 in the paper; the
            reference implementation divides by its distillation temperature, 2 by default).
        nearest_mean: classify by the nearest mean of exemplars at test time (else the heads).
        memory_seed: seed of the memory's own generator for replay draws.
    """

    supported_scenarios: ClassVar[tuple[str, ...]] = ("CIL", "TIL")
    needs_h1: ClassVar[bool] = True

    def __init__(
        self,
        *args: Any,
        memory_size: int | None = 2000,
        exemplars_per_class: int | None = None,
        replay_batch_size: int | None = None,
        temperature: float = 1.0,
        nearest_mean: bool = True,
        memory_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        name = type(self).__name__
        if (memory_size is None) == (exemplars_per_class is None):
            raise ValueError(
                f"{name}: set exactly one of memory_size and exemplars_per_class (the other "
                f"null), got {memory_size} and {exemplars_per_class}."
            )
        budget = memory_size if exemplars_per_class is None else exemplars_per_class
        assert budget is not None  # exactly one of the two is set
        if int(budget) <= 0 or (replay_batch_size is not None and replay_batch_size <= 0):
            raise ValueError(
                f"{name}: the memory budget and replay_batch_size must be positive, got "
                f"{budget} and {replay_batch_size}."
            )
        if not temperature > 0:
            raise ValueError(f"{name}: temperature must be positive, got {temperature}.")
        self.memory_size = None if memory_size is None else int(memory_size)
        self.exemplars_per_class = None if exemplars_per_class is None else int(exemplars_per_class)
        self.replay_batch_size = replay_batch_size
        self.temperature = float(temperature)
        self.nearest_mean = bool(nearest_mean)
        self.memory = ExemplarMemory(memory_seed)
        self.memory_task = 0
        """The last task whose classes the memory and the class means include."""
        self.class_means: dict[tuple[int, int], Tensor] = {}
        """`(task, label)` → the normalised mean of the class's exemplar features (CPU)."""
        self._datamodule: Any = None
        self.task_samples = 0
        """$N$, the current task's training samples (counted at the task's start)."""

    # ------------------------------------------------------------------ training
    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """The base set-up; keep the datamodule (the task's exemplars are drawn from it) and
        count the task's training samples $N$."""
        super().on_task_start(task_id, datamodule)
        self._datamodule = datamodule
        self.task_samples = _num_samples(datamodule.train_dataloader())

    def num_replayed(self, batch_size: int) -> int:
        """$k$ for a batch of `batch_size` task samples (see the class docstring)."""
        if self.replay_batch_size is not None:
            return self.replay_batch_size
        expected = batch_size * len(self.memory) / max(self.task_samples, 1)
        fraction = torch.rand((), generator=self.memory.generator).item()
        return math.floor(expected) + int(fraction < expected - math.floor(expected))

    def _old_columns(self, x: Tensor, task_ids: Tensor, width: int) -> tuple[Tensor, Tensor]:
        """`(old, teacher_logits)`, both `(B, width)`, from h1 (no old column on the first task)."""
        old = torch.zeros(x.shape[0], width, dtype=torch.bool, device=x.device)
        teacher = x.new_zeros((x.shape[0], width), dtype=torch.float32)
        if self.h1 is None:
            return old, teacher
        if self.scenario == "CIL":
            h1_logits = self.h1_logits(x, task_ids)
            teacher[:, : h1_logits.shape[1]] = h1_logits.float()
            old[:, : h1_logits.shape[1]] = True
            return old, teacher
        rows = task_ids < self.task_id  # TIL: the exemplars' tasks, all known to h1
        if rows.any():
            h1_logits = self.h1_logits(x[rows], task_ids[rows]).float()
            teacher[rows, : h1_logits.shape[1]] = h1_logits
            columns = torch.arange(width, device=x.device)
            old[rows] = columns[None, :] < self.heads.num_logits(task_ids[rows])[:, None]
        return old, teacher

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """iCaRL's loss over the batch joined by a batch of exemplars."""
        x, y, task_ids = batch
        replay = (
            self.memory.sample(self.num_replayed(x.shape[0]), x.device)
            if self.memory.sets
            else None
        )
        if replay is not None:
            x = torch.cat([x, replay[0].to(x.dtype)])
            y, task_ids = torch.cat([y, replay[1]]), torch.cat([task_ids, replay[2]])
        logits = self(x, task_ids)
        columns = torch.arange(logits.shape[1], device=x.device)
        valid = columns[None, :] < self.heads.num_logits(task_ids)[:, None]
        old, teacher = self._old_columns(x, task_ids, logits.shape[1])
        bce, distillation = bce_distillation(logits, y, teacher, old, valid, self.temperature)
        return {"bce": bce, "distillation": distillation}

    # ------------------------------------------------------------------ exemplars
    def per_class_budget(self, num_classes: int) -> int:
        """$m$ for `num_classes` classes seen so far."""
        if self.exemplars_per_class is not None:
            return self.exemplars_per_class
        assert self.memory_size is not None
        m = self.memory_size // num_classes
        if m < 1:
            raise ValueError(
                f"{type(self).__name__}: memory_size {self.memory_size} is less than one exemplar "
                f"for each of the {num_classes} classes; raise memory_size."
            )
        return m

    def update_memory(self) -> None:
        """Reduce the old exemplar sets, choose the current task's by herding, and recompute the
        class means (once per task; see the class docstring)."""
        if self.memory_task == self.task_id:
            return
        if self._datamodule is None:
            raise ValueError(
                f"{type(self).__name__}: no datamodule to draw task {self.task_id}'s exemplars "
                "from; call on_task_start(task_id, datamodule) first."
            )
        with torch.inference_mode(False), torch.no_grad():  # also when called inside a test
            was_training = self.training
            self.eval()
            try:
                self._choose_exemplars()
                self._compute_means()
            finally:
                self.train(was_training)
        self.memory_task = self.task_id

    def _features(self, x: Tensor) -> Tensor:
        device = self._model_device()
        return torch.cat([self.backbone(part.to(device)).float() for part in x.split(256)])

    def _choose_exemplars(self) -> None:
        xs, ys, tasks = [], [], []
        for batch in self._datamodule.train_dataloader():
            # under DDP every rank herds over the whole task: the exemplars agree on every rank
            x, y, task_ids = (distributed.gather_rows(t) for t in batch)
            xs.append(x.detach().cpu().clone())
            ys.append(y.cpu())
            tasks.append(task_ids.cpu())
        x, y, task_ids = torch.cat(xs), torch.cat(ys), torch.cat(tasks)
        keys = torch.stack([task_ids, y], dim=1)
        new = [k for k in torch.unique(keys, dim=0).tolist() if tuple(k) not in self.memory.sets]
        m = self.per_class_budget(len(self.memory.sets) + len(new))
        self.memory.reduce(m)
        for key in new:
            rows = (keys == torch.tensor(key)).all(1)
            samples = x[rows]
            chosen = herding(self._features(samples), min(m, len(samples))).cpu()
            self.memory.add((key[0], key[1]), samples[chosen])

    def _compute_means(self) -> None:
        self.class_means = {
            key: class_mean(self._features(exemplars)).cpu()
            for key, exemplars in sorted(self.memory.sets.items())
        }

    def on_train_end(self) -> None:
        """Lightning hook: update the memory with the model just trained (before the test)."""
        super().on_train_end()
        self.update_memory()

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """Make sure the memory includes the task (a resumed fit may skip `on_train_end`)."""
        super().on_task_end(task_id, datamodule)
        self.update_memory()

    # ------------------------------------------------------------------ test
    def nearest_mean_logits(self, features: Tensor, task_ids: Tensor) -> Tensor:
        """Scores $-\\|\\hat\\varphi(x) - \\mu_y\\|^2$ laid out like the heads' logits (CIL: one
        column per class so far; TIL: the sample's task's classes, padded with `PAD_LOGIT`)."""
        if self.scenario == "CIL":
            labels = sorted(label for _, label in self.class_means)
            if labels != list(range(len(labels))):
                raise ValueError(
                    f"{type(self).__name__}: the class means cover labels {labels}, not 0..K-1."
                )
            by_label = sorted(self.class_means, key=lambda key: key[1])
            means = torch.stack([self.class_means[k] for k in by_label])
            return nearest_mean_scores(features, means.to(features.device))
        tasks = [int(t) for t in torch.unique(task_ids).tolist()]
        width = max(self.heads.task_classes[t] for t in tasks)
        scores = features.new_full((features.shape[0], width), PAD_LOGIT, dtype=torch.float32)
        for t in tasks:
            rows = task_ids == t
            means = torch.stack(
                [self.class_means[(t, j)] for j in range(self.heads.task_classes[t])]
            )
            scores[rows, : len(means)] = nearest_mean_scores(
                features[rows], means.to(scores.device)
            )
        return scores

    def test_logits(self, x: Tensor, task_ids: Tensor) -> Tensor:
        """With `nearest_mean`, the nearest-mean-of-exemplars scores; else the heads' logits."""
        if self.nearest_mean:
            return self.nearest_mean_logits(self.backbone(x), task_ids)
        return super().test_logits(x, task_ids)

    def on_test_epoch_start(self) -> None:
        """Make sure the memory includes the current task, then the base set-up."""
        if self.nearest_mean and self.task_id > 0:
            self.update_memory()
        super().on_test_epoch_start()

    # ------------------------------------------------------------------ checkpoint
    def extra_cl_state(self) -> dict[str, Any]:
        """The exemplar memory (with its generator), the class means and `memory_task`."""
        keys = sorted(self.class_means)
        return {
            "icarl": {
                "memory": self.memory.state_dict(),
                "memory_task": self.memory_task,
                "mean_keys": torch.tensor(keys, dtype=torch.long).reshape(-1, 2),
                "means": torch.stack([self.class_means[k] for k in keys]) if keys else None,
            }
        }

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `extra_cl_state` saved."""
        saved = state["icarl"]
        self.memory.load_state_dict(saved["memory"])
        self.memory_task = int(saved["memory_task"])
        keys = [tuple(k) for k in saved["mean_keys"].tolist()]
        self.class_means = {k: saved["means"][i].clone() for i, k in enumerate(keys)}


def _num_samples(loader: Iterable[Any]) -> int:
    """The samples of a training loader: its `num_samples` (clarena's loaders), its dataset's
    length (a torch `DataLoader`), else counted over one pass."""
    if hasattr(loader, "num_samples"):
        return int(loader.num_samples)
    dataset = getattr(loader, "dataset", None)
    if dataset is not None and hasattr(dataset, "__len__"):
        return len(dataset)
    return sum(int(batch[1].shape[0]) for batch in loader)

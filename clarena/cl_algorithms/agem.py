"""Averaged Gradient Episodic Memory: the gradient projected against a replayed reference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.class_memory import ClassMemory
from clarena.cl_algorithms.regularizers._common import check_nonnegative


def project_gradient(grad: Tensor, reference: Tensor, eps: float = 0.0) -> Tensor:
    """A-GEM's projection of the flat gradient $g$ against the reference gradient $g_{ref}$:

    $$\\tilde g = g - \\frac{\\min(0,\\ g^\\top g_{ref})}{g_{ref}^\\top g_{ref} + \\epsilon}\\,
    g_{ref},$$

    i.e. $g$ unchanged when $g^\\top g_{ref} \\ge 0$, else $g$ minus its component along
    $g_{ref}$, so that $\\tilde g^\\top g_{ref} = 0$ (for $\\epsilon = 0$). Branch-free: no
    host synchronisation on a GPU.
    """
    dot = (grad * reference).sum()
    return grad - (dot.clamp(max=0) / ((reference * reference).sum() + eps)) * reference


class AGEM(CLAlgorithm):
    """A-GEM (Chaudhry, Ranzato, Rohrbach & Elhoseiny, "Efficient lifelong learning with A-GEM",
    ICLR 2019): train on the current batch's cross-entropy, but before each optimizer step project
    its gradient $g$ with `project_gradient` against the gradient $g_{ref}$ of the cross-entropy
    of a batch replayed from the episodic memory of the earlier tasks, so that (to first order)
    the loss on the memory does not increase.

    The memory (`ClassMemory`) holds `budget_per_class` random training samples of every class of
    every earlier task (a class is the pair (task, label)), stored at the end of each task. This
    matches the reference implementation of van de Ven, Tuytelaars & Tolias (2022;
    GMvandeVen/continual-learning, `models/classifier.py`, `train/train_task_based.py`) with its
    budget of 100 per class: the memory is filled at the end of each task and only earlier tasks
    are replayed; $g$ and $g_{ref}$ span every trainable parameter (a TIL head of an earlier task
    may move after a projection, as there); the replayed batch has the training batch's size;
    in TIL it holds $\\lceil B / (t-1) \\rceil$ samples of each earlier task, as the reference's
    per-context batches; $\\epsilon$ = 1e-7 (its `--eps-agem`). Under DDP $g_{ref}$ is averaged
    over the ranks like $g$. With gradient accumulation the reference gradient is that of the last
    batch. Supports every scenario. Loss terms: `ce`; also logged: `train/agem_projected` (1 when
    the step's gradient was projected, 0 when it already agreed with $g_{ref}$).

    Args:
        budget_per_class: samples kept per class (the reference's `--budget`).
        replay_batch_size: replayed samples per step (default: the training batch size).
        eps: $\\epsilon$, numerical safety of the projection.
        buffer_seed: seed of the memory's own random generator (selection and sampling never
            touch the global torch RNG).
    """

    def __init__(
        self,
        *args: Any,
        budget_per_class: int = 100,
        replay_batch_size: int | None = None,
        eps: float = 1e-7,
        buffer_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if int(budget_per_class) <= 0 or (replay_batch_size is not None and replay_batch_size <= 0):
            raise ValueError(
                f"AGEM: budget_per_class and replay_batch_size must be positive, got "
                f"{budget_per_class} and {replay_batch_size}."
            )
        self.budget_per_class = int(budget_per_class)
        self.replay_batch_size = replay_batch_size
        self.eps = check_nonnegative("eps", eps)
        self.class_memory = ClassMemory(
            self.budget_per_class, per_task_batches=self.scenario == "TIL", seed=buffer_seed
        )
        self._reference: Tensor | None = None

    # ------------------------------------------------------------------ memory
    @property
    def memory(self) -> dict[str, Tensor]:
        """The episodic memory: `x`, `y`, `task_ids` of the stored samples (empty before)."""
        return self.class_memory.tensors

    @property
    def generator(self) -> torch.Generator:
        """The memory's own random generator (selection and sampling)."""
        return self.class_memory.generator

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """Add `budget_per_class` random training samples of each of the task's classes."""
        super().on_task_end(task_id, datamodule)
        self.class_memory.add_task(datamodule.train_dataloader())

    def sample_memory(self, batch_size: int) -> dict[str, Tensor]:
        """A replayed batch (`ClassMemory.sample`): `batch_size` stored samples drawn uniformly,
        or in TIL $\\lceil$`batch_size` / number of stored tasks$\\rceil$ of each stored task.

        Raises:
            ValueError: Before the memory holds anything (the end of the first task).
        """
        if not self.class_memory:
            raise ValueError(
                "AGEM: the memory is empty until the first task ends; call on_task_end first."
            )
        return self.class_memory.sample(batch_size, self.memory["x"].device)

    # ------------------------------------------------------------------ training
    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy of the current batch; with a memory, also the reference gradient
        $g_{ref}$ of a replayed batch, which `on_before_optimizer_step` projects against."""
        x, y, task_ids = batch
        terms = {"ce": F.cross_entropy(self(x, task_ids), y)}
        self._reference = None
        if not self.memory:
            return terms
        replay = self.class_memory.sample(self.replay_batch_size or x.shape[0], x.device)
        replay_ce = F.cross_entropy(self(replay["x"], replay["task_ids"]), replay["y"])
        params = self.trainable_parameters()
        grads = torch.autograd.grad(replay_ce, params, allow_unused=True)
        reference = torch.cat(
            [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(reference)
            reference /= torch.distributed.get_world_size()
        self._reference = reference
        return terms

    @torch.no_grad()
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Replace the gradient by its projection against $g_{ref}$ (when there is one). Lightning
        calls this after the backward pass (and the unscaling of mixed precision), before any
        gradient clipping and the step."""
        if self._reference is None:
            return
        params = self.trainable_parameters()
        grad = torch.cat(
            [(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in params]
        )
        reference, self._reference = self._reference, None
        violated = (grad * reference).sum() < 0
        projected = project_gradient(grad, reference.to(grad.dtype), self.eps)
        for p, g in zip(params, projected.split([p.numel() for p in params])):
            if p.grad is None:
                p.grad = g.view_as(p).clone()
            else:
                p.grad.copy_(g.view_as(p))
        self.log_step_value("train/agem_projected", violated.float())

    # ------------------------------------------------------------------ checkpoint
    def extra_cl_state(self) -> dict[str, Any]:
        """The episodic memory and the state of its random generator."""
        state = self.class_memory.state_dict()
        return {"agem_memory": state["memory"], "agem_generator": state["generator"]}

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore the episodic memory and its generator."""
        self.class_memory.load_state_dict(
            {"memory": state["agem_memory"], "generator": state["agem_generator"]}
        )

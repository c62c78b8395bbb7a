"""Experience Replay with a reservoir buffer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.class_memory import ClassMemory
from clarena.cl_algorithms.replay_buffer import ReplayBuffer

WEIGHTINGS: tuple[str, ...] = ("sum", "1/t")
"""How `ER` weighs its two terms."""


class ER(CLAlgorithm):
    """Experience Replay (Chaudhry et al., "On tiny episodic memories in continual learning", 2019;
    Riemer et al., 2019): every training batch is joined by a batch drawn from a buffer filled by
    reservoir sampling over the whole stream,

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\beta\\, \\mathrm{CE}(f(x_b), y_b),
    \\qquad (x_b, y_b) \\sim \\mathcal{M}.$$

    The current and replayed samples go through the model in one forward pass (BatchNorm sees
    both). Supports every scenario. Loss terms: `ce`, `replay_ce`.

    With `budget_per_class` the memory is instead the reference implementation's of van de Ven et
    al. (2022): `ClassMemory`, that many random samples of each class stored at the end of each
    task, only earlier tasks replayed (in TIL $\\lceil B/(t-1) \\rceil$ of each). With
    `weighting="1/t"` the terms are weighed as there, $\\frac{1}{t}\\,\\mathrm{CE} +
    \\big(1 - \\frac{1}{t}\\big)\\,\\beta\\,\\mathrm{CE}_{replay}$ on task $t$.

    Args:
        buffer_size: the reservoir buffer's capacity $|\\mathcal{M}|$ (without
            `budget_per_class`).
        replay_batch_size: samples drawn from the buffer per step (default: the batch size).
        replay_weight: $\\beta$.
        class_balanced: use class-balancing reservoir sampling.
        buffer_seed: seed of the buffer's own random generator.
        budget_per_class: store this many samples per class at each task's end (`ClassMemory`)
            instead of the reservoir buffer.
        weighting: `"sum"` (CE + β CE_replay) or `"1/t"` (the reference's relative weights).
    """

    def __init__(
        self,
        *args: Any,
        buffer_size: int = 200,
        replay_batch_size: int | None = None,
        replay_weight: float = 1.0,
        class_balanced: bool = False,
        buffer_seed: int = 0,
        budget_per_class: int | None = None,
        weighting: str = "sum",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if weighting not in WEIGHTINGS:
            raise ValueError(
                f"{type(self).__name__}: weighting must be one of {', '.join(WEIGHTINGS)}, got "
                f"{weighting!r}."
            )
        self.weighting = weighting
        self.class_memory = (
            None
            if budget_per_class is None
            else ClassMemory(budget_per_class, self.scenario == "TIL", seed=buffer_seed)
        )
        if replay_weight < 0 or (replay_batch_size is not None and replay_batch_size <= 0):
            raise ValueError(
                f"{type(self).__name__}: replay_weight must be ≥ 0 and replay_batch_size positive, "
                f"got {replay_weight} and {replay_batch_size}."
            )
        self.buffer = ReplayBuffer(
            buffer_size,
            class_balanced=class_balanced,
            seed=buffer_seed,
            per_task_classes=self.scenario == "TIL",
        )
        self.replay_batch_size = replay_batch_size
        self.replay_weight = float(replay_weight)

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy of the current batch and of a replayed one; then offer the current batch
        to the buffer."""
        x, y, task_ids = batch
        size = self.replay_batch_size or x.shape[0]
        if self.class_memory is None:
            replay = self.buffer.sample(size)
        else:
            replay = self.class_memory.sample(size, x.device) if self.class_memory else None
        if replay is None:
            terms = {"ce": F.cross_entropy(self(x, task_ids), y), "replay_ce": x.new_zeros(())}
        else:
            xb, yb, tb = (replay[k].to(x.device) for k in ("x", "y", "task_ids"))
            logits = self(torch.cat([x, xb]), torch.cat([task_ids, tb]))
            n = x.shape[0]
            terms = {
                "ce": F.cross_entropy(logits[:n], y),
                "replay_ce": self.replay_weight * F.cross_entropy(logits[n:], yb),
            }
            if self.weighting == "1/t":
                share = 1 / self.task_id
                terms = {"ce": share * terms["ce"], "replay_ce": (1 - share) * terms["replay_ce"]}
        if self.class_memory is None:
            self.buffer.add(x, y, task_ids)
        return terms

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """With `budget_per_class`, store the task's samples in the memory."""
        super().on_task_end(task_id, datamodule)
        if self.class_memory is not None:
            self.class_memory.add_task(datamodule.train_dataloader())

    def extra_cl_state(self) -> dict[str, Any]:
        """The replay buffer (and the class memory)."""
        state: dict[str, Any] = {"buffer": self.buffer.state_dict()}
        if self.class_memory is not None:
            state["class_memory"] = self.class_memory.state_dict()
        return state

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore the replay buffer (and the class memory)."""
        self.buffer.load_state_dict(state["buffer"])
        if self.class_memory is not None:
            self.class_memory.load_state_dict(state["class_memory"])

"""Experience Replay with a reservoir buffer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.replay_buffer import ReplayBuffer


class ER(CLAlgorithm):
    """Experience Replay (Chaudhry et al., "On tiny episodic memories in continual learning", 2019;
    Riemer et al., 2019): every training batch is joined by a batch drawn from a buffer filled by
    reservoir sampling over the whole stream,

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\beta\\, \\mathrm{CE}(f(x_b), y_b),
    \\qquad (x_b, y_b) \\sim \\mathcal{M}.$$

    The current and replayed samples go through the model in one forward pass (BatchNorm sees
    both). Supports every scenario. Loss terms: `ce`, `replay_ce`.

    Args:
        buffer_size: the buffer's capacity $|\\mathcal{M}|$.
        replay_batch_size: samples drawn from the buffer per step (default: the batch size).
        replay_weight: $\\beta$.
        class_balanced: use class-balancing reservoir sampling.
        buffer_seed: seed of the buffer's own random generator.
    """

    def __init__(
        self,
        *args: Any,
        buffer_size: int = 200,
        replay_batch_size: int | None = None,
        replay_weight: float = 1.0,
        class_balanced: bool = False,
        buffer_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
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
        replay = self.buffer.sample(self.replay_batch_size or x.shape[0])
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
        self.buffer.add(x, y, task_ids)
        return terms

    def extra_cl_state(self) -> dict[str, Any]:
        """The replay buffer."""
        return {"buffer": self.buffer.state_dict()}

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore the replay buffer."""
        self.buffer.load_state_dict(state["buffer"])

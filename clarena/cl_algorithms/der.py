"""Dark Experience Replay: replay with the logits stored at insertion time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.regularizers import DistillationReg
from clarena.cl_algorithms.replay_buffer import ReplayBuffer


def stored_logit_distance(
    distillation: nn.Module, logits: Tensor, stored: Tensor, widths: Tensor
) -> Tensor:
    """`distillation` between current logits and stored ones over the columns each stored row
    covers, as DER needs it: both are padded to the wider width, the entries of
    row $i$ at columns $j \\ge w_i$ (its stored width) are made equal, and the mean is
    renormalised to the covered entries, $d \\cdot \\frac{N \\cdot W}{\\sum_i \\min(w_i, W)}$.

    Args:
        distillation: the distance, `forward(student, teacher)` (e.g.
            `DistillationReg(alpha, distance="MSE")`).
        logits: the current logits of the replayed samples, shape (N, C).
        stored: the logits stored with them, shape (N, C').
        widths: each stored row's width $w_i$, shape (N,).

    Returns:
        The renormalised distance, a scalar.
    """
    width = max(logits.shape[1], stored.shape[1])
    logits = F.pad(logits, (0, width - logits.shape[1]))
    stored = F.pad(stored.to(logits.dtype), (0, width - stored.shape[1]))
    covered = torch.arange(width, device=logits.device) < widths.unsqueeze(1)
    value = distillation(torch.where(covered, logits, stored), stored)
    return value * (covered.numel() / covered.sum().clamp_min(1))


class DER(CLAlgorithm):
    """Dark Experience Replay (Buzzega et al., NeurIPS 2020, eq. 5): a reservoir buffer keeps
    samples with the logits the model gave them when they were seen, and the model is pulled
    towards them,

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\alpha\\, \\mathrm{MSE}(f(x_b), z_b),
    \\qquad (x_b, z_b) \\sim \\mathcal{M},$$

    the second term being `DistillationReg(α, distance="MSE")`. Stored logits are compared only over
    the classes they cover: in CIL a sample stored when the head had $k$ classes is compared over
    those $k$ columns (the mean runs over the covered entries only). Supports every scenario.
    Loss terms: `ce`, `logit_replay`.

    Args:
        buffer_size: the buffer's capacity.
        alpha: $\\alpha$, the weight of the logit-matching term.
        replay_batch_size: samples drawn from the buffer per step (default: the batch size).
        class_balanced: use class-balancing reservoir sampling.
        buffer_seed: seed of the buffer's own random generator.
    """

    def __init__(
        self,
        *args: Any,
        buffer_size: int = 200,
        alpha: float = 0.3,
        replay_batch_size: int | None = None,
        class_balanced: bool = False,
        buffer_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if replay_batch_size is not None and replay_batch_size <= 0:
            raise ValueError(
                f"{type(self).__name__}: replay_batch_size must be positive, got "
                f"{replay_batch_size}."
            )
        self.logit_distillation = DistillationReg(alpha, distance="MSE")
        self.buffer = ReplayBuffer(
            buffer_size,
            class_balanced=class_balanced,
            seed=buffer_seed,
            per_task_classes=self.scenario == "TIL",
        )
        self.replay_batch_size = replay_batch_size

    def stored_logit_distance(self, logits: Tensor, stored: Tensor, widths: Tensor) -> Tensor:
        """`stored_logit_distance` with this algorithm's `logit_distillation`."""
        return stored_logit_distance(self.logit_distillation, logits, stored, widths)

    def _replay(self, n: int, device: torch.device) -> dict[str, Tensor] | None:
        replay = self.buffer.sample(self.replay_batch_size or n)
        return None if replay is None else {k: v.to(device) for k, v in replay.items()}

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy on the batch and logit matching on a replayed one; then offer the batch
        (with its logits) to the buffer."""
        x, y, task_ids = batch
        logits = self(x, task_ids)
        terms = {"ce": F.cross_entropy(logits, y), "logit_replay": logits.new_zeros(())}
        replay = self._replay(x.shape[0], x.device)
        if replay is not None:
            out = self(replay["x"], replay["task_ids"])
            terms["logit_replay"] = self.stored_logit_distance(
                out, replay["logits"], replay["logit_widths"]
            )
        terms.update(self.extra_replay_terms(x.shape[0], x.device))
        widths = self.heads.num_logits(task_ids)
        self.buffer.add(x, y, task_ids, logits.detach(), widths)
        return terms

    def extra_replay_terms(self, n: int, device: torch.device) -> dict[str, Tensor]:
        """More terms on replayed samples (DER++ adds its label replay); none here."""
        return {}

    def extra_cl_state(self) -> dict[str, Any]:
        """The replay buffer, stored logits included."""
        return {"buffer": self.buffer.state_dict()}

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore the replay buffer."""
        self.buffer.load_state_dict(state["buffer"])

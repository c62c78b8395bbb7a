"""Shared machinery of the backward-compatibility algorithms (`BCNewError`, `StrictImitation`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.replay_buffer import ReplayBuffer
from clarena.heads import PAD_LOGIT

MULTICLASS_LOSSES: tuple[str, ...] = ("nll", "cross_entropy", "kl_div")
"""The underlying BC losses that apply to multi-class heads."""


class BCAlgorithm(CLAlgorithm):
    """Cross-entropy on the task plus a BC dissonance regulariser against h1, the frozen model from
    before the current task (Srivastava et al., KDD 2020; SPEC §2):

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\beta\\, \\mathrm{CE}(f(x_b), y_b)
    + \\frac{\\lambda_c}{|D|} \\sum_{i \\in D} w_i\\, d_i ,$$

    where the last term is the regulariser (`dissonance`) over the samples $D$ it applies to:
    in DIL / DataIL every sample of the batch (current and replayed), since h1 knows every class;
    in TIL / CIL only replayed samples of earlier tasks, the classes h1 knows (a replay buffer is
    then required). In CIL, h1's logits are padded with `PAD_LOGIT` for the classes it never saw
    (probability 0). The replay term is present only with a buffer. With $\\lambda_c = 0$ the
    algorithm is Finetuning (no buffer) or ER (with one), step for step.
    Loss terms: `ce`, `replay_ce` (with a buffer), `dissonance`.

    Args:
        loss: the underlying loss, `"cross_entropy"`, `"nll"` or `"kl_div"`.
        lambda_c: $\\lambda_c \\ge 0$.
        buffer_size: replay buffer capacity (0: no buffer; TIL and CIL need one).
        replay_batch_size: samples drawn from the buffer per step (default: the batch size).
        replay_weight: $\\beta$.
        class_balanced: use class-balancing reservoir sampling.
        buffer_seed: seed of the buffer's own random generator.
    """

    needs_h1: ClassVar[bool] = True

    def __init__(
        self,
        *args: Any,
        loss: str = "cross_entropy",
        lambda_c: float = 1.0,
        buffer_size: int = 0,
        replay_batch_size: int | None = None,
        replay_weight: float = 1.0,
        class_balanced: bool = False,
        buffer_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        name = type(self).__name__
        if loss not in MULTICLASS_LOSSES:
            raise ValueError(
                f"{name}: loss {loss!r} does not apply to multi-class heads; choose one of "
                f"{MULTICLASS_LOSSES}."
            )
        if self.scenario in ("TIL", "CIL") and buffer_size <= 0:
            raise ValueError(
                f"{name} in {self.scenario} needs a replay buffer (set buffer_size > 0): h1 knows "
                "none of a new task's classes, so the dissonance applies to replayed samples only."
            )
        if replay_weight < 0:
            raise ValueError(f"{name}: replay_weight must be ≥ 0, got {replay_weight}.")
        self.dissonance = self.make_regularizer(loss, lambda_c)
        self.buffer = (
            ReplayBuffer(
                buffer_size,
                class_balanced=class_balanced,
                seed=buffer_seed,
                per_task_classes=self.scenario == "TIL",
            )
            if buffer_size > 0
            else None
        )
        self.replay_batch_size = replay_batch_size
        self.replay_weight = float(replay_weight)

    def make_regularizer(self, loss: str, lambda_c: float) -> nn.Module:
        """The dissonance regulariser, `forward(h2_output, h1_output, target)`."""
        raise NotImplementedError

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy, replayed cross-entropy and the dissonance against h1."""
        x, y, task_ids = batch
        n = x.shape[0]
        replay = None
        if self.buffer is not None:
            replay = self.buffer.sample(self.replay_batch_size or n)
        if replay is None:
            logits = self(x, task_ids)
            xb = yb = tb = logits_b = None
        else:
            xb, yb, tb = (replay[k].to(x.device) for k in ("x", "y", "task_ids"))
            joint = self(torch.cat([x, xb]), torch.cat([task_ids, tb]))
            logits, logits_b = joint[:n], joint[n:]
        terms = {"ce": F.cross_entropy(logits, y)}
        if self.buffer is not None:
            terms["replay_ce"] = (
                logits.new_zeros(())
                if logits_b is None or yb is None
                else self.replay_weight * F.cross_entropy(logits_b, yb)
            )
        terms["dissonance"] = self._dissonance(
            (x, y, task_ids, logits), None if xb is None else (xb, yb, tb, logits_b)
        )
        if self.buffer is not None:
            self.buffer.add(x, y, task_ids)
        return terms

    def _dissonance(self, current: tuple, replayed: tuple | None) -> Tensor:
        logits = current[3]
        if self.h1 is None:
            return logits.new_zeros(())
        parts = []
        if self.scenario in ("DIL", "DataIL"):
            parts.append(current)
            if replayed is not None:
                parts.append(replayed)
        elif replayed is not None:
            old = replayed[2] < self.task_id  # samples of the tasks h1 learned
            parts.append(tuple(v[old] for v in replayed))
        parts = [p for p in parts if p[0].shape[0] > 0]
        if not parts:
            return logits.new_zeros(())
        width = max(p[3].shape[1] for p in parts)
        x = torch.cat([p[0] for p in parts])
        y = torch.cat([p[1] for p in parts])
        task_ids = torch.cat([p[2] for p in parts])
        h2_output = torch.cat(
            [F.pad(p[3], (0, width - p[3].shape[1]), value=PAD_LOGIT) for p in parts]
        )
        h1_output = self.h1_logits(x, task_ids)
        h1_output = F.pad(h1_output, (0, width - h1_output.shape[1]), value=PAD_LOGIT)
        return self.dissonance(h2_output, h1_output, y)

    def extra_cl_state(self) -> dict[str, Any]:
        """The replay buffer (None without one)."""
        return {"buffer": None if self.buffer is None else self.buffer.state_dict()}

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore the replay buffer."""
        if self.buffer is not None and state.get("buffer") is not None:
            self.buffer.load_state_dict(state["buffer"])

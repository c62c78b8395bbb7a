"""`StepContext`: what the terms of one training step of a `Composed` algorithm share.

The context reads the algorithm through `ComposedParts`, the attributes it needs, so that the
terms (`clarena.cl_algorithms.terms`) and the algorithm (`clarena.cl_algorithms.composed`) both
depend on this module and not on each other.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor, nn

from clarena.cl_algorithms.base import Batch
from clarena.cl_algorithms.class_memory import ClassMemory
from clarena.cl_algorithms.replay_buffer import ReplayBuffer
from clarena.cl_algorithms.snapshot import Snapshot
from clarena.heads import Heads


class ComposedParts(Protocol):
    """What a step context reads of its algorithm (a `Composed` has all of it)."""

    needs: frozenset[str]
    replay_forward: str
    replay_batch_size: int | None
    backbone: nn.Module
    heads: Heads
    buffer: ReplayBuffer | None
    class_memory: ClassMemory | None
    task_id: int
    scenario: str

    @property
    def h1(self) -> Snapshot | None: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


class StepContext:
    """What the terms of one training step share, each piece computed at most once.

    On construction: a replayed batch is drawn from the buffer (when a term needs `"replay"` and
    the buffer holds samples) and the model runs on the current batch and the replayed one: in one
    pass over both concatenated (`replay_forward="joint"`, as `ER` does; BatchNorm sees both) or in
    two (`"separate"`, the current batch first, as `DER` does). h1's backbone runs at most once,
    without gradient, on the first request, over the current batch (when a term needs `"h1"`) and
    the replayed one (when a term needs `"h1_replay"`). A term needing `"extra_replay"` draws a
    batch of its own with `draw_replay` (DER++'s second, independent draw).

    Attributes:
        algorithm: the `Composed` algorithm (`ComposedParts`: what the context reads of it).
        x: the current inputs.
        y: the current labels.
        task_ids: the current task ids.
        features: the backbone's features of `x`.
        logits: the model's logits of `x`.
        replay: the replayed batch (`x`, `y`, `task_ids`, and `logits`, `logit_widths` when the
            buffer stores logits), or None.
        replay_logits: the model's logits of the replayed inputs, or None.
        replay_draws: how many batches were drawn from the buffer in this step.
    """

    def __init__(self, algorithm: ComposedParts, batch: Batch) -> None:
        self.algorithm = algorithm
        self.x, self.y, self.task_ids = batch
        n = self.x.shape[0]
        self.replay_draws = 0
        self.replay = self._draw() if "replay" in algorithm.needs else None
        self.replay_features: Tensor | None = None
        self.replay_logits: Tensor | None = None
        if self.replay is None or algorithm.replay_forward == "separate":
            self.features = algorithm.backbone(self.x)
            self.logits = algorithm.heads(self.features, self.task_ids)
            if self.replay is not None:
                self.replay_features = algorithm.backbone(self.replay["x"])
                self.replay_logits = algorithm.heads(self.replay_features, self.replay["task_ids"])
        else:
            xs = torch.cat([self.x, self.replay["x"]])
            ts = torch.cat([self.task_ids, self.replay["task_ids"]])
            features = algorithm.backbone(xs)
            logits = algorithm.heads(features, ts)
            self.features, self.replay_features = features[:n], features[n:]
            self.logits, self.replay_logits = logits[:n], logits[n:]
        self._h1_features: tuple[Tensor | None, Tensor | None] | None = None
        self.h1_backbone_calls = 0
        """How many times h1's backbone ran in this step (0 or 1)."""

    def _draw(self) -> dict[str, Tensor] | None:
        """A batch from the class memory or the buffer on the batch's device (None while empty)."""
        algorithm = self.algorithm
        size = algorithm.replay_batch_size or self.x.shape[0]
        drawn: dict[str, Tensor] | None = None
        if algorithm.class_memory is not None:
            if algorithm.class_memory:
                drawn = algorithm.class_memory.sample(size, self.x.device)
        elif algorithm.buffer is not None:
            sample = algorithm.buffer.sample(size)
            if sample is not None:
                drawn = {k: v.to(self.x.device) for k, v in sample.items()}
        if drawn is not None:
            self.replay_draws += 1
        return drawn

    def draw_replay(self) -> tuple[dict[str, Tensor], Tensor] | None:
        """Another replayed batch, drawn independently of `replay`, and the model's logits of it
        (one more forward pass); None while the buffer is empty. For a term needing
        `"extra_replay"`."""
        if "extra_replay" not in self.algorithm.needs:
            raise ValueError("Composed: draw_replay, but no term declared 'extra_replay'.")
        drawn = self._draw()
        if drawn is None:
            return None
        return drawn, self.algorithm(drawn["x"], drawn["task_ids"])

    @property
    def h1(self) -> Snapshot | None:
        """The frozen pre-task model on the batch's device (None on the first task)."""
        h1 = self.algorithm.h1
        if h1 is None:
            return None
        p = next(h1.parameters(), None)
        if p is not None and p.device != self.x.device:
            h1.to(self.x.device)
        return h1

    def _h1_run(self) -> tuple[Tensor | None, Tensor | None]:
        if self._h1_features is None:
            h1 = self.h1
            if h1 is None:
                raise ValueError("Composed: there is no h1 before the second task.")
            needs = self.algorithm.needs
            current = self.x if "h1" in needs else self.x[:0]
            replay = self.replay if "h1_replay" in needs else None
            xs = current if replay is None else torch.cat([current, replay["x"]])
            with torch.no_grad():
                features = h1.backbone(xs)
            self.h1_backbone_calls += 1
            n = current.shape[0]
            self._h1_features = (
                features[:n] if "h1" in needs else None,
                None if replay is None else features[n:],
            )
        return self._h1_features

    @property
    def h1_features(self) -> Tensor:
        """h1's backbone features of the current inputs (no gradient; a term must need `"h1"`)."""
        features = self._h1_run()[0]
        if features is None:
            raise ValueError("Composed: h1 on the current batch, but no term declared 'h1'.")
        return features

    @property
    def h1_replay_features(self) -> Tensor:
        """h1's backbone features of the replayed inputs (no gradient; a term must need
        `"h1_replay"`)."""
        features = self._h1_run()[1]
        if features is None:
            raise ValueError("Composed: no replayed batch, or no term declared 'h1_replay'.")
        return features

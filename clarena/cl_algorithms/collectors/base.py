"""The interface of an importance collector (see `clarena.cl_algorithms.collectors`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from clarena.cl_algorithms.base import CLAlgorithm

Penalty = tuple[dict[str, Tensor], dict[str, Tensor]]
"""One penalty's (importances, anchors), by parameter name relative to the algorithm."""


def detached_copy(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """`state`'s tensors detached, copied and on the CPU (for a checkpoint)."""
    return {n: v.detach().cpu().clone() for n, v in state.items()}


class ImportanceCollector:
    """Anchors and importances of the protected parameters, updated in the task hooks.

    Subclasses implement `penalties`, the state hooks they need and `state_dict` /
    `load_state_dict`; `bind` attaches the collector to the algorithm whose parameters it reads.
    """

    def __init__(self) -> None:
        self._algorithm: CLAlgorithm | None = None

    @property
    def algorithm(self) -> CLAlgorithm:
        """The algorithm the collector reads (set by `bind`)."""
        if self._algorithm is None:
            raise ValueError(
                f"{type(self).__name__}: used before it was bound to an algorithm; put it in a "
                "ParameterChange term of a Composed algorithm."
            )
        return self._algorithm

    def bind(self, algorithm: CLAlgorithm) -> None:
        """Read the parameters of `algorithm` from now on."""
        self._algorithm = algorithm

    def protected_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters the penalty protects, by name relative to the algorithm: the backbone's
        and the heads' shared ones (a TIL task head is private to its task)."""
        a = self.algorithm
        params = {f"backbone.{n}": p for n, p in a.backbone.named_parameters()}
        params.update({f"heads.{n}": p for n, p in a.heads.shared_parameters().items()})
        return params

    def penalties(self) -> list[Penalty]:
        """The (importances, anchors) pairs the penalty sums over now (empty before the first)."""
        raise NotImplementedError

    def follow(self, device: torch.device) -> None:
        """Move the stored tensors to `device` (a no-op where they already are)."""

    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """Called after the algorithm's own task start (heads set up for the task)."""

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """Called after the algorithm's own task end: the new importance and anchor."""

    def after_optimizer_step(self) -> None:
        """Called after every optimizer step."""

    def state_dict(self) -> dict[str, Any]:
        """The collector's state, tensors on the CPU."""
        raise NotImplementedError

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        raise NotImplementedError


def move_all(states: tuple[dict[str, Tensor], ...], device: torch.device) -> None:
    """Move every tensor of the dicts `states` to `device`, in place."""
    for state in states:
        for name, value in state.items():
            if value.device != device:
                state[name] = value.to(device)


@contextmanager
def on_fit_device_in_eval(algorithm: CLAlgorithm) -> Iterator[tuple[torch.device, torch.device]]:
    """Run a task-end measurement where the model was trained, in eval mode: yields
    `(device, home)`, the fit device and the model's present device, and restores both the mode
    and the device afterwards (Lightning leaves the model on the CPU after `fit`)."""
    home = algorithm._model_device()
    device = algorithm.fit_device or home
    algorithm.to(device)
    was_training = algorithm.training
    algorithm.eval()
    try:
        yield device, home
    finally:
        algorithm.train(was_training)
        algorithm.to(home)


def pooled_mean(
    sums: dict[str, Tensor], count: int, device: torch.device, home: torch.device
) -> dict[str, Tensor]:
    """`sums / count` on `home`; under DDP the ranks' sums and counts are pooled first (each rank
    saw its own shard), so every rank holds the same mean."""
    total = torch.tensor(float(count), device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for value in sums.values():
            torch.distributed.all_reduce(value)
        torch.distributed.all_reduce(total)
    return {n: (value / total.clamp_min(1.0)).to(home) for n, value in sums.items()}

"""SI's importance: the path integral of each task, accumulated after every optimizer step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from clarena.cl_algorithms.collectors.base import (
    ImportanceCollector,
    Penalty,
    detached_copy,
    move_all,
)
from clarena.cl_algorithms.regularizers.importance import (
    grow_to,
    path_integral_step,
    si_importance,
)


class PathIntegralImportance(ImportanceCollector):
    """Synaptic Intelligence's importance (Zenke, Poole & Ganguli, ICML 2017),
    $\\Omega = \\sum_{\\text{past tasks}} \\frac{\\omega}{\\Delta^2 + \\xi}$, with the anchor
    $\\theta^*$ the parameters at the end of the previous task (before the first: the initial ones).

    During a task every optimizer step adds $-g \\cdot \\Delta\\theta$ to the path integral
    $\\omega$ (`regularizers.importance.path_integral_step`), $g$ the gradient the step applied and
    $\\Delta\\theta$ measured around the step; at its end $\\omega$ is divided by the squared
    change $\\Delta^2$ of each parameter over the task plus $\\xi$ (`si_importance`) and added to
    $\\Omega$. Parameters that appeared or grew (a CIL head) are anchored at their present value
    with importance 0 until they have been trained.

    Args:
        damping: $\\xi$, bounds $\\Omega$ where a parameter barely moved.
    """

    def __init__(self, damping: float = 0.1) -> None:
        super().__init__()
        self.damping = float(damping)
        si_importance({}, {}, self.damping)  # validates the damping
        self.importance: dict[str, Tensor] = {}
        """$\\Omega$, the summed importance of the past tasks, by name."""
        self.anchors: dict[str, Tensor] = {}
        """$\\theta^*$, the parameters at the end of the previous task (the initial ones before)."""
        self.path_integral: dict[str, Tensor] = {}
        """$\\omega$ of the current task so far."""
        self.previous: dict[str, Tensor] = {}
        """The parameters after the last optimizer step."""

    def _state(self) -> tuple[dict[str, Tensor], ...]:
        return self.importance, self.anchors, self.path_integral, self.previous

    def penalties(self) -> list[Penalty]:
        """$(\\Omega, \\theta^*)$ over the parameters with an importance (none before the first
        task's end)."""
        if not self.importance:
            return []
        return [(self.importance, {n: self.anchors[n] for n in self.importance})]

    def follow(self, device: torch.device) -> None:
        """Move the SI state to `device` (Lightning moves the model between fit and test)."""
        move_all(self._state(), device)

    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """Extend $\\theta^*$ and $\\Omega$ to parameters that appeared or grew (anchored at their
        present value, importance 0) and start a new path integral."""
        current = {n: p.detach() for n, p in self.protected_parameters().items()}
        self.follow(self.algorithm._model_device())
        self.anchors = {
            n: grow_to(self.anchors[n], p, fill=p) if n in self.anchors else p.clone()
            for n, p in current.items()
        }
        self.importance = {
            n: grow_to(self.importance[n], p) for n, p in current.items() if n in self.importance
        }
        self.path_integral = {n: torch.zeros_like(p) for n, p in current.items()}
        self.previous = {n: p.clone() for n, p in current.items()}

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Add the last step's contribution: the gradients still held by the parameters and their
        change since the previous call."""
        params = self.protected_parameters()
        if not params:
            return
        self.follow(next(iter(params.values())).device)
        current = {n: params[n].detach() for n in self.previous}
        deltas = {n: current[n] - self.previous[n] for n in self.previous}
        grads = {n: params[n].grad for n in self.previous}
        path_integral_step(self.path_integral, grads, deltas)
        self.previous = {n: p.clone() for n, p in current.items()}

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """Add the task's $\\omega / (\\Delta^2 + \\xi)$ to $\\Omega$ and take the new anchor."""
        current = {n: p.detach() for n, p in self.protected_parameters().items()}
        self.follow(self.algorithm._model_device())
        change = {n: current[n] - self.anchors[n] for n in self.path_integral}
        new = si_importance(self.path_integral, change, self.damping)
        self.importance = {
            n: self.importance[n] + new[n] if n in self.importance else new[n] for n in new
        }
        self.anchors = {n: p.clone() for n, p in current.items()}
        self.path_integral = {}
        self.previous = {}

    def state_dict(self) -> dict[str, Any]:
        """$\\Omega$, $\\theta^*$, the running path integral and the last parameters (so a run
        resumed inside a task continues the path integral where it stopped)."""
        names = ("importance", "anchors", "path_integral", "previous")
        return {f"si_{key}": detached_copy(state) for key, state in zip(names, self._state())}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` saved."""
        device = self.algorithm._model_device()

        def load(key: str) -> dict[str, Tensor]:
            return {n: v.to(device) for n, v in state[f"si_{key}"].items()}

        self.importance = load("importance")
        self.anchors = load("anchors")
        self.path_integral = load("path_integral")
        self.previous = load("previous")

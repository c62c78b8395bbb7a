"""Synaptic Intelligence: a path-integral importance accumulated online during training."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.regularizers import ParameterChangeReg
from clarena.cl_algorithms.regularizers.importance import (
    grow_to,
    path_integral_step,
    si_importance,
)


class SI(CLAlgorithm):
    """Synaptic Intelligence (Zenke, Poole & Ganguli, ICML 2017):

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + c \\sum_k \\Omega_k (\\theta_k - \\theta^*_k)^2,
    \\qquad \\Omega = \\sum_{\\text{past tasks}} \\frac{\\omega}{\\Delta^2 + \\xi},$$

    the penalty being `ParameterChangeReg(c)` with $\\Omega$ as importances and $\\theta^*$ the
    parameters at the end of the previous task (before the first task: the initial parameters).
    During a task every optimizer step adds $-g \\cdot \\Delta\\theta$ to the path integral
    $\\omega$ (`regularizers.importance.path_integral_step`); at its end $\\omega$ is divided by
    the squared change $\\Delta^2$ of each parameter over the task plus the damping $\\xi$
    (`si_importance`) and added to $\\Omega$.

    Matches the reference implementation of van de Ven, Tuytelaars & Tolias (2022;
    GMvandeVen/continual-learning, `models/cl/continual_learner.py`): $g$ is the gradient the
    step applied (that of the whole loss, penalty included, after any clipping), $\\Delta\\theta$
    is measured around each optimizer step, there is no $\\frac12$ in front of the penalty, and
    $\\xi$ = 0.1 by default (its `--epsilon`). Its split-MNIST values of $c$ are 10 (Task-IL),
    50000 (Domain-IL) and 5000 (Class-IL); the default here is the Task-IL one because TIL is the
    default scenario. Protected: the backbone and the heads' shared parameters (a TIL task head is
    private to its task; the reference regularizes every output unit, but there too the units of
    other tasks get no gradient from a task's loss). A CIL head that grew keeps its new classes
    unpenalised until they have been trained.
    Supports every scenario. Loss terms: `ce`, `si`.

    Args:
        si_factor: $c$, the strength of the penalty.
        damping: $\\xi$, bounds $\\Omega$ where a parameter barely moved.
    """

    def __init__(
        self, *args: Any, si_factor: float = 10.0, damping: float = 0.1, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.penalty = ParameterChangeReg(si_factor)
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

    def protected_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters the penalty protects, by name relative to the algorithm."""
        params = {f"backbone.{n}": p for n, p in self.backbone.named_parameters()}
        params.update({f"heads.{n}": p for n, p in self.heads.shared_parameters().items()})
        return params

    def _state(self) -> tuple[dict[str, Tensor], ...]:
        return self.importance, self.anchors, self.path_integral, self.previous

    def _follow(self, device: torch.device) -> None:
        """Move the SI state to `device` (Lightning moves the model between fit and test)."""
        for state in self._state():
            for name, value in state.items():
                if value.device != device:
                    state[name] = value.to(device)

    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """Extend $\\theta^*$ and $\\Omega$ to parameters that appeared or grew (anchored at their
        present value, importance 0) and start a new path integral."""
        super().on_task_start(task_id, datamodule)
        current = {n: p.detach() for n, p in self.protected_parameters().items()}
        self._follow(self._model_device())
        self.anchors = {
            n: grow_to(self.anchors[n], p, fill=p) if n in self.anchors else p.clone()
            for n, p in current.items()
        }
        self.importance = {
            n: grow_to(self.importance[n], p) for n, p in current.items() if n in self.importance
        }
        self.path_integral = {n: torch.zeros_like(p) for n, p in current.items()}
        self.previous = {n: p.clone() for n, p in current.items()}

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy on the batch and the SI penalty."""
        x, y, task_ids = batch
        logits = self(x, task_ids)
        terms = {"ce": F.cross_entropy(logits, y)}
        if not self.importance:
            terms["si"] = logits.new_zeros(())
            return terms
        self._follow(x.device)
        current = self.protected_parameters()
        params = {n: current[n] for n in self.importance}
        anchors = {n: self.anchors[n] for n in self.importance}
        terms["si"] = self.penalty(params, anchors, self.importance)
        return terms

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Take the step (Lightning's default), then add its $-g \\cdot \\Delta\\theta$ to the
        path integral."""
        super().optimizer_step(*args, **kwargs)
        self.accumulate_path_integral()

    @torch.no_grad()
    def accumulate_path_integral(self) -> None:
        """Add the last step's contribution: the gradients still held by the parameters and their
        change since the previous call."""
        params = self.protected_parameters()
        if not params:
            return
        self._follow(next(iter(params.values())).device)
        current = {n: params[n].detach() for n in self.previous}
        deltas = {n: current[n] - self.previous[n] for n in self.previous}
        grads = {n: params[n].grad for n in self.previous}
        path_integral_step(self.path_integral, grads, deltas)
        self.previous = {n: p.clone() for n, p in current.items()}

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """Add the task's $\\omega / (\\Delta^2 + \\xi)$ to $\\Omega$ and take the new anchor."""
        super().on_task_end(task_id, datamodule)
        current = {n: p.detach() for n, p in self.protected_parameters().items()}
        self._follow(self._model_device())
        change = {n: current[n] - self.anchors[n] for n in self.path_integral}
        new = si_importance(self.path_integral, change, self.damping)
        self.importance = {
            n: self.importance[n] + new[n] if n in self.importance else new[n] for n in new
        }
        self.anchors = {n: p.clone() for n, p in current.items()}
        self.path_integral = {}
        self.previous = {}

    def extra_cl_state(self) -> dict[str, Any]:
        """$\\Omega$, $\\theta^*$, the running path integral and the last parameters (so a run
        resumed inside a task continues the path integral where it stopped)."""
        names = ("importance", "anchors", "path_integral", "previous")
        return {
            f"si_{key}": {n: v.detach().cpu().clone() for n, v in state.items()}
            for key, state in zip(names, self._state())
        }

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `extra_cl_state` saved."""
        device = self._model_device()

        def load(key: str) -> dict[str, Tensor]:
            return {n: v.to(device) for n, v in state[f"si_{key}"].items()}

        self.importance = load("importance")
        self.anchors = load("anchors")
        self.path_integral = load("path_integral")
        self.previous = load("previous")

"""Synaptic Intelligence: a path-integral importance accumulated online during training."""

from __future__ import annotations

from typing import Any

from clarena.cl_algorithms.collectors import PathIntegralImportance
from clarena.cl_algorithms.composed import Composed
from clarena.cl_algorithms.regularizers import ParameterChangeReg
from clarena.cl_algorithms.terms import CrossEntropy, ParameterChange


class SI(Composed):
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
    Supports every scenario. A thin composition: the terms `ce` (`terms.CrossEntropy`) and `si`
    (`terms.ParameterChange` with a `collectors.PathIntegralImportance`,
    `SI.collector`). Loss terms: `ce`, `si`.

    Args:
        si_factor: $c$, the strength of the penalty.
        damping: $\\xi$, bounds $\\Omega$ where a parameter barely moved.
    """

    legacy_term = "si"

    def __init__(
        self, *args: Any, si_factor: float = 10.0, damping: float = 0.1, **kwargs: Any
    ) -> None:
        importance = PathIntegralImportance(damping)
        terms = {
            "ce": CrossEntropy(),
            "si": ParameterChange(ParameterChangeReg(si_factor), importance),
        }
        super().__init__(*args, terms=terms, **kwargs)
        self.collector = importance
        """$\\Omega$ (`importance`), $\\theta^*$ (`anchors`) and the running path integral."""

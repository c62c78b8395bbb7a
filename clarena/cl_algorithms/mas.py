"""Memory Aware Synapses: importance from the sensitivity of the model's output."""

from __future__ import annotations

from typing import Any

from clarena.cl_algorithms.collectors import OutputSensitivityImportance
from clarena.cl_algorithms.composed import Composed
from clarena.cl_algorithms.regularizers import ParameterChangeReg
from clarena.cl_algorithms.terms import CrossEntropy, ParameterChange


class MAS(Composed):
    """Memory Aware Synapses (Aljundi, Babiloni, Elhoseiny, Rohrbach & Tuytelaars, ECCV 2018):

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\lambda \\sum_k \\Omega_k (\\theta_k - \\theta^*_k)^2,
    \\qquad \\Omega_k \\mathrel{+}= \\frac1N \\sum_{n=1}^N
    \\Big| \\frac{\\partial \\lVert f_\\theta(x_n) \\rVert_2^2}{\\partial \\theta_k} \\Big|,$$

    the penalty being `ParameterChangeReg(λ)` with $\\Omega$ as importances and $\\theta^*$ the
    parameters at the end of the previous task. At the end of each task the importance is measured
    on the task's training inputs (no labels needed), one gradient per sample
    (`regularizers.importance.output_sensitivity`), with the model in eval mode, and added to the
    importance of the earlier tasks (the paper accumulates them). $f_\\theta(x)$ is the output the
    sample's task sees: the logits of its own head (TIL), of every class seen so far (CIL), or of
    the shared head. Under DDP the ranks' sums are pooled. Protected: the backbone and the heads'
    shared parameters (as in `EWC`). Supports every scenario. A thin composition: the terms `ce`
    (`terms.CrossEntropy`) and `mas` (`terms.ParameterChange` with a
    `collectors.OutputSensitivityImportance`, `MAS.collector`).
    Loss terms: `ce`, `mas`.

    Args:
        mas_factor: $\\lambda$ (1 in most of the paper's experiments).
        importance_num_samples: use at most this many training samples for $\\Omega$ (None: all).
        importance_chunk_size: samples per vectorised per-sample-gradient call (bounds memory).
    """

    legacy_term = "mas"

    def __init__(
        self,
        *args: Any,
        mas_factor: float = 1.0,
        importance_num_samples: int | None = None,
        importance_chunk_size: int = 32,
        **kwargs: Any,
    ) -> None:
        importance = OutputSensitivityImportance(importance_num_samples, importance_chunk_size)
        terms = {
            "ce": CrossEntropy(),
            "mas": ParameterChange(ParameterChangeReg(mas_factor), importance),
        }
        super().__init__(*args, terms=terms, **kwargs)
        self.collector = importance
        """$\\Omega$ (`importance`), $\\theta^*$ (`anchors`) and their computation (`compute`)."""

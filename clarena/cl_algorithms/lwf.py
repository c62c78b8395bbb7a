"""Learning without Forgetting: distil the old heads' outputs of the model from before the task."""

from __future__ import annotations

from typing import Any

from clarena.cl_algorithms.composed import Composed
from clarena.cl_algorithms.regularizers import DistillationReg
from clarena.cl_algorithms.terms import CrossEntropy, Distillation


class LwF(Composed):
    """Learning without Forgetting (Li & Hoiem, TPAMI 2017): cross-entropy on the new task plus the
    distillation of the frozen pre-task model h1's outputs on the current inputs,

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y)
    + \\sum_{o} R_{\\mathrm{distill}}\\big(f_o(x), h1_o(x)\\big),$$

    with $R_{\\mathrm{distill}}$ = `DistillationReg(factor, temperature, "cross_entropy")` (LwF's
    eq. 3). The old outputs $o$: in TIL each old task's head (a sum over the heads); in CIL the
    logits of the classes h1 knows; in DIL / DataIL the shared head. The term is 0 on the first
    task. A thin composition: the terms `ce` (`terms.CrossEntropy`) and `distillation`
    (`terms.Distillation`), so `configs/cl_algorithm/lwf.yaml` equals a `Composed` of those two.

    The reference implementation of van de Ven et al. (2022) weighs its LwF differently in two
    places, which the two switches below reproduce: in CIL its student's softmax runs over every
    class so far, the teacher's probability of the new classes being 0; in DIL it counts the
    shared head once per earlier task, i.e. multiplies the term by $t - 1$.

    Args:
        distillation_factor: the factor $\\lambda_o$ of the distillation term.
        temperature: the distillation temperature $T$ (2 in the paper).
        distill_new_classes: in CIL, distil over every class so far with zero target probability
            on the classes h1 does not know (default: over h1's classes only).
        count_old_tasks: in DIL / DataIL, multiply the term by the number of earlier tasks.
        *args: `backbone, heads, optimizer, scenario` as `CLAlgorithm`.
        **kwargs: as `CLAlgorithm`.
    """

    def __init__(
        self,
        *args: Any,
        distillation_factor: float = 1.0,
        temperature: float = 2.0,
        distill_new_classes: bool = False,
        count_old_tasks: bool = False,
        **kwargs: Any,
    ) -> None:
        regularizer = DistillationReg(distillation_factor, temperature, "cross_entropy")
        terms = {
            "ce": CrossEntropy(),
            "distillation": Distillation(regularizer, distill_new_classes, count_old_tasks),
        }
        super().__init__(*args, terms=terms, **kwargs)

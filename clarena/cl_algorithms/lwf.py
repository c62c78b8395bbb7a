"""Learning without Forgetting: distil the old heads' outputs of the model from before the task."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.regularizers import DistillationReg
from clarena.heads import TaskHeads


class LwF(CLAlgorithm):
    """Learning without Forgetting (Li & Hoiem, TPAMI 2017): cross-entropy on the new task plus the
    distillation of the frozen pre-task model h1's outputs on the current inputs,

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y)
    + \\sum_{o} R_{\\mathrm{distill}}\\big(f_o(x), h1_o(x)\\big),$$

    with $R_{\\mathrm{distill}}$ = `DistillationReg(factor, temperature, "cross_entropy")` (LwF's
    eq. 3). The old outputs $o$: in TIL each old task's head (a sum over the heads); in CIL the
    logits of the classes h1 knows; in DIL / DataIL the shared head. The term is 0 on the first
    task. Loss terms: `ce`, `distillation`.

    The reference implementation of van de Ven et al. (2022) weighs its LwF differently in two
    places, which the two switches below reproduce (with `distillation_factor` = $T^2$ for its
    $T^2$ scaling): in CIL its student's softmax runs over every class so far, the teacher's
    probability of the new classes being 0; in DIL it counts the shared head once per earlier
    task, i.e. multiplies the term by $t - 1$.

    Args:
        distillation_factor: the factor $\\lambda_o$ of the distillation term.
        temperature: the distillation temperature $T$ (2 in the paper).
        distill_new_classes: in CIL, distil over every class so far with zero target probability
            on the classes h1 does not know (default: over h1's classes only).
        count_old_tasks: in DIL / DataIL, multiply the term by the number of earlier tasks.
    """

    needs_h1: ClassVar[bool] = True

    def __init__(
        self,
        *args: Any,
        distillation_factor: float = 1.0,
        temperature: float = 2.0,
        distill_new_classes: bool = False,
        count_old_tasks: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.distillation = DistillationReg(distillation_factor, temperature, "cross_entropy")
        self.distill_new_classes = bool(distill_new_classes)
        self.count_old_tasks = bool(count_old_tasks)

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Cross-entropy on the batch and distillation of h1's old outputs."""
        x, y, task_ids = batch
        features = self.backbone(x)
        logits = self.heads(features, task_ids)
        terms = {"ce": F.cross_entropy(logits, y), "distillation": logits.new_zeros(())}
        if self.h1 is None:
            return terms
        h1 = self._h1_on(x.device)
        with torch.no_grad():
            old_features = h1.backbone(x)
        if isinstance(self.heads, TaskHeads) and isinstance(h1.heads, TaskHeads):
            total = terms["distillation"]
            for t in sorted(h1.heads.task_classes):
                with torch.no_grad():
                    teacher = h1.heads.head(old_features, t)
                total = total + self.distillation(self.heads.head(features, t), teacher)
            terms["distillation"] = total
        else:
            with torch.no_grad():
                teacher = h1.heads(old_features, task_ids)
            old = teacher.shape[1]
            if self.distill_new_classes and self.scenario == "CIL" and logits.shape[1] > old:
                # the new classes get target probability exactly 0 (softmax of -inf)
                padding = teacher.new_full((teacher.shape[0], logits.shape[1] - old), -math.inf)
                terms["distillation"] = self.distillation(logits, torch.cat([teacher, padding], 1))
            else:
                terms["distillation"] = self.distillation(logits[:, :old], teacher)
            if self.count_old_tasks and self.scenario in ("DIL", "DataIL"):
                terms["distillation"] = terms["distillation"] * (self.task_id - 1)
        return terms

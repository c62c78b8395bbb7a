"""Terms of a `Composed` algorithm: a regularizer plus what it is applied to.

A term is a small `nn.Module` whose `forward(ctx)` returns one scalar of the training objective
from the step context `StepContext` (the current batch and its logits, h1's outputs on it, a
replayed batch and its logits, the stored logits of the buffer). A term declares what the context
must provide (`needs`): `"h1"` (the frozen pre-task model on the current batch), `"h1_replay"`
(h1 on the replayed samples too), `"replay"` (a replayed batch; the algorithm then builds a replay
buffer), `"extra_replay"` (a batch the term draws for itself, independently of the shared one)
and `"stored_logits"` (the buffer also keeps the logits of the samples it stores, DER).
Terms with their own state across tasks (the importance of a parameter-change penalty) keep it
themselves and take part in the task hooks and the checkpoint.

- `CrossEntropy`: cross-entropy of the current batch.
- `ReplayCrossEntropy` (replay, or extra replay): cross-entropy of the replayed batch (ER), or of
  a batch drawn for the term alone (DER++).
- `Distillation` (h1): `DistillationReg` on h1's old outputs of the current batch (LwF).
- `LogitReplay` (replay, stored logits): `DistillationReg` (MSE) towards the logits stored with
  the replayed samples (DER).
- `Dissonance` (h1; in TIL and CIL: replay, and h1 on it only): `BCNewErrorReg`,
  `StrictImitationReg`, `FocalDistillationKLReg` or `FocalDistillationLMReg` against h1 on the
  samples it knows, as `BCAlgorithm` applies them.
- `ParameterChange`: `ParameterChangeReg` over the protected parameters and their anchors,
  weighted by EWC's Fisher, SI's path integral or MAS's output sensitivity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clarena.cl_algorithms.collectors import COLLECTORS, ImportanceCollector
from clarena.cl_algorithms.regularizers import DistillationReg, ParameterChangeReg
from clarena.cl_algorithms.regularizers.distillation import stored_logit_distance
from clarena.cl_algorithms.regularizers.importance import crop_to
from clarena.heads import PAD_LOGIT, TaskHeads

if TYPE_CHECKING:
    from clarena.cl_algorithms.base import CLAlgorithm
    from clarena.cl_algorithms.step_context import StepContext

NEEDS: tuple[str, ...] = ("h1", "h1_replay", "replay", "extra_replay", "stored_logits")
"""What a term may ask of the step context."""


class Term(nn.Module):
    """Base of the terms: `forward(ctx)` → a scalar tensor.

    A subclass sets `needs` (or overrides `requirements` when they depend on the scenario) and
    may override `setup`, the task hooks, `after_optimizer_step` and `cl_state` /
    `load_cl_state` (weights-only-safe values).
    """

    needs: ClassVar[frozenset[str]] = frozenset()
    """What the step context must provide for this term (a subset of `NEEDS`)."""

    replay_note: ClassVar[str] = ""
    """Why the term replays samples, added to the error when a buffer is missing."""

    def requirements(self, scenario: str) -> frozenset[str]:
        """The needs of this term in `scenario` (default: `needs`)."""
        return self.needs

    def setup(self, algorithm: CLAlgorithm, name: str) -> None:
        """Called once at the end of the algorithm's construction (check the scenario, build
        state collectors)."""

    def forward(self, ctx: StepContext) -> Tensor:  # pragma: no cover - abstract
        """The term's value on the step context."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward(ctx).")

    def on_task_start(self, algorithm: CLAlgorithm, task_id: int, datamodule: Any) -> None:
        """After the algorithm started task `task_id` (h1 taken, heads set up)."""

    def on_task_end(self, algorithm: CLAlgorithm, task_id: int, datamodule: Any) -> None:
        """At the end of task `task_id`."""

    def after_optimizer_step(self, algorithm: CLAlgorithm) -> None:
        """After every optimizer step."""

    def cl_state(self) -> dict[str, Any]:
        """The term's own checkpointed state."""
        return {}

    def load_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `cl_state` saved."""


WEIGHTINGS: tuple[str, ...] = ("sum", "1/t")
"""How the current and the replayed cross-entropy share the objective: `"sum"` (each with its own
factor) or `"1/t"` (on task $t$, once a batch is replayed, $\\frac{1}{t}$ for the current batch
and $1 - \\frac{1}{t}$ for the replayed one, as the reference implementation of van de Ven et
al. 2022 weighs them)."""


def _check_weighting(weighting: str, who: str) -> str:
    if weighting not in WEIGHTINGS:
        raise ValueError(
            f"{who}: weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}."
        )
    return weighting


class CrossEntropy(Term):
    """`weight` · cross-entropy of the current batch's logits and labels.

    Args:
        weight: the factor of the term.
        weighting: `"sum"`, or `"1/t"` (times $\\frac{1}{t}$ when a batch is replayed).
    """

    def __init__(self, weight: float = 1.0, weighting: str = "sum") -> None:
        super().__init__()
        self.weight = float(weight)
        self.weighting = _check_weighting(weighting, "CrossEntropy")

    def forward(self, ctx: StepContext) -> Tensor:
        """$w \\cdot \\mathrm{CE}(f(x), y)$."""
        value = F.cross_entropy(ctx.logits, ctx.y)
        if self.weighting == "1/t" and ctx.replay is not None:
            value = (1 / ctx.algorithm.task_id) * value
        return value if self.weight == 1.0 else self.weight * value


class ReplayCrossEntropy(Term):
    """`weight` · cross-entropy of the replayed batch (ER's replay term); 0 while nothing can be
    replayed.

    Args:
        weight: $\\beta$, the factor of the term.
        weighting: `"sum"`, or `"1/t"` (times $1 - \\frac{1}{t}$).
        independent: on a batch of its own, drawn independently of the shared replayed batch
            (DER++'s label replay; needs `"extra_replay"`).
    """

    def __init__(
        self, weight: float = 1.0, weighting: str = "sum", independent: bool = False
    ) -> None:
        super().__init__()
        if not weight >= 0:
            raise ValueError(f"ReplayCrossEntropy: weight must be ≥ 0, got {weight}.")
        self.weight = float(weight)
        self.weighting = _check_weighting(weighting, "ReplayCrossEntropy")
        self.independent = bool(independent)

    def requirements(self, scenario: str) -> frozenset[str]:
        """The shared replayed batch, or (`independent`) one drawn for this term."""
        return frozenset({"extra_replay" if self.independent else "replay"})

    def forward(self, ctx: StepContext) -> Tensor:
        """$\\beta \\cdot \\mathrm{CE}(f(x_b), y_b)$."""
        if self.independent:
            drawn = ctx.draw_replay()
            if drawn is None:
                return ctx.logits.new_zeros(())
            replay, logits = drawn
        else:
            if ctx.replay is None:
                return ctx.logits.new_zeros(())
            assert ctx.replay_logits is not None  # set together with ctx.replay
            replay, logits = ctx.replay, ctx.replay_logits
        value = self.weight * F.cross_entropy(logits, replay["y"])
        if self.weighting == "1/t":
            value = (1 - 1 / ctx.algorithm.task_id) * value
        return value


class Distillation(Term):
    """LwF's term: `regularizer(student, teacher)` between the current model's and h1's outputs
    on the current batch, over h1's old outputs: in TIL each old task's head (summed over the
    heads), in CIL the classes h1 knows, in DIL / DataIL the shared head. 0 on the first task.

    Two switches reproduce the weighting of the reference implementation of van de Ven et al.
    (2022): `distill_new_classes` (CIL: the student's softmax over every class so far, the
    teacher's probability of the new classes 0, as its zero-padded targets) and `count_old_tasks`
    (DIL / DataIL: the term times the number of earlier tasks, $t - 1$, as it counts the shared
    head once per earlier context).

    Args:
        regularizer: a `DistillationReg` (or any module `forward(student, teacher)`).
        distill_new_classes: in CIL, distil over every class so far with zero target probability
            on the classes h1 does not know (default: over h1's classes only).
        count_old_tasks: in DIL / DataIL, multiply the term by the number of earlier tasks.
    """

    needs = frozenset({"h1"})

    def __init__(
        self,
        regularizer: nn.Module | None = None,
        distill_new_classes: bool = False,
        count_old_tasks: bool = False,
    ) -> None:
        super().__init__()
        self.regularizer = DistillationReg(1.0, 2.0) if regularizer is None else regularizer
        self.distill_new_classes = bool(distill_new_classes)
        self.count_old_tasks = bool(count_old_tasks)

    def forward(self, ctx: StepContext) -> Tensor:
        """The distillation of h1's old outputs (see the class docstring)."""
        h1 = ctx.h1
        if h1 is None:
            return ctx.logits.new_zeros(())
        old_features = ctx.h1_features
        algorithm = ctx.algorithm
        heads = algorithm.heads
        if isinstance(heads, TaskHeads) and isinstance(h1.heads, TaskHeads):
            total = ctx.logits.new_zeros(())
            for t in sorted(h1.heads.task_classes):
                with torch.no_grad():
                    teacher = h1.heads.head(old_features, t)
                total = total + self.regularizer(heads.head(ctx.features, t), teacher)
            return total
        with torch.no_grad():
            teacher = h1.heads(old_features, ctx.task_ids)
        old, logits = teacher.shape[1], ctx.logits
        if self.distill_new_classes and algorithm.scenario == "CIL" and logits.shape[1] > old:
            # the new classes get target probability exactly 0 (softmax of -inf)
            padding = teacher.new_full((teacher.shape[0], logits.shape[1] - old), -math.inf)
            value = self.regularizer(logits, torch.cat([teacher, padding], 1))
        else:
            value = self.regularizer(logits[:, :old], teacher)
        if self.count_old_tasks and algorithm.scenario in ("DIL", "DataIL"):
            value = value * (algorithm.task_id - 1)
        return value


class LogitReplay(Term):
    """DER's term: `regularizer` (MSE) between the replayed samples' current logits and the
    logits stored with them, over the columns each stored row covers (`stored_logit_distance`,
    as `DER`). 0 while the buffer is empty.

    Args:
        regularizer: a `DistillationReg(alpha, distance="MSE")`.
    """

    needs = frozenset({"replay", "stored_logits"})

    def __init__(self, regularizer: nn.Module | None = None) -> None:
        super().__init__()
        self.logit_distillation = (
            DistillationReg(0.3, distance="MSE") if regularizer is None else regularizer
        )

    def forward(self, ctx: StepContext) -> Tensor:
        """$\\alpha\\, \\mathrm{MSE}(f(x_b), z_b)$ over the covered columns."""
        if ctx.replay is None:
            return ctx.logits.new_zeros(())
        assert ctx.replay_logits is not None  # set together with ctx.replay
        return stored_logit_distance(
            self.logit_distillation,
            ctx.replay_logits,
            ctx.replay["logits"],
            ctx.replay["logit_widths"],
        )


class Dissonance(Term):
    """A backward-compatibility dissonance against h1, `regularizer(h2_output, h1_output, y)`, on
    the samples h1 knows, as `BCAlgorithm` applies it: in DIL / DataIL every current and replayed
    sample; in TIL / CIL the replayed samples of earlier tasks (so a replay buffer is needed).
    Outputs of different widths are padded with `PAD_LOGIT`. 0 on the first task.

    Args:
        regularizer: `BCNewErrorReg`, `StrictImitationReg`, `FocalDistillationKLReg` or
            `FocalDistillationLMReg` (any module `forward(h2_output, h1_output, target)`).
    """

    replay_note = "h1 knows none of a new task's classes: the dissonance applies to replayed ones"

    def __init__(self, regularizer: nn.Module) -> None:
        super().__init__()
        self.regularizer = regularizer

    def requirements(self, scenario: str) -> frozenset[str]:
        """DIL / DataIL: h1 on the current and replayed samples; TIL / CIL: a replayed batch and
        h1 on it only."""
        if scenario in ("TIL", "CIL"):
            return frozenset({"replay", "h1_replay"})
        return frozenset({"h1", "h1_replay"})

    def forward(self, ctx: StepContext) -> Tensor:
        """The dissonance on the samples h1 knows."""
        h1 = ctx.h1
        if h1 is None:
            return ctx.logits.new_zeros(())
        parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []  # y, task_ids, h2, h1 features
        if ctx.algorithm.scenario in ("DIL", "DataIL"):
            parts.append((ctx.y, ctx.task_ids, ctx.logits, ctx.h1_features))
            if ctx.replay is not None:
                r = ctx.replay
                assert ctx.replay_logits is not None  # set together with ctx.replay
                parts.append((r["y"], r["task_ids"], ctx.replay_logits, ctx.h1_replay_features))
        elif ctx.replay is not None:
            r = ctx.replay
            assert ctx.replay_logits is not None  # set together with ctx.replay
            old = r["task_ids"] < ctx.algorithm.task_id  # samples of the tasks h1 learned
            parts.append(
                (
                    r["y"][old],
                    r["task_ids"][old],
                    ctx.replay_logits[old],
                    ctx.h1_replay_features[old],
                )
            )
        parts = [p for p in parts if p[0].shape[0] > 0]
        if not parts:
            return ctx.logits.new_zeros(())
        y = torch.cat([p[0] for p in parts])
        task_ids = torch.cat([p[1] for p in parts])
        width = max(p[2].shape[1] for p in parts)
        h2_output = torch.cat(
            [F.pad(p[2], (0, width - p[2].shape[1]), value=PAD_LOGIT) for p in parts]
        )
        with torch.no_grad():
            h1_output = h1.heads(torch.cat([p[3] for p in parts]), task_ids)
        h1_output = F.pad(h1_output, (0, width - h1_output.shape[1]), value=PAD_LOGIT)
        return self.regularizer(h2_output, h1_output, y)


IMPORTANCES: tuple[str, ...] = tuple(COLLECTORS)
"""The names of the importance collectors `ParameterChange` builds (`collectors.COLLECTORS`)."""


class ParameterChange(Term):
    """`regularizer(params, anchors, importances)` (a `ParameterChangeReg`) over the protected
    parameters (the backbone and the heads' shared parameters), summed over the (importances,
    anchors) penalties of an importance collector (`clarena.cl_algorithms.collectors`), which the
    term binds to the algorithm and calls in the task hooks: `"ewc"` (`FisherImportance`, online
    or offline; one penalty per stored Fisher), `"si"` (`PathIntegralImportance`, accumulated
    after every optimizer step), `"mas"` (`OutputSensitivityImportance`). A grown CIL head is
    compared over the classes its anchor has. 0 before the first importance exists.

    Args:
        regularizer: a `ParameterChangeReg(factor)`; its factor is the penalty's coefficient.
        importance: `"ewc"`, `"si"`, `"mas"`, or a collector instance.
        options: the named collector's own options: EWC's `gamma`, `online`, `fisher_labels`,
            `fisher_num_samples`, `fisher_chunk_size`; SI's `damping`; MAS's
            `importance_num_samples`, `importance_chunk_size`.
    """

    def __init__(
        self,
        regularizer: nn.Module | None = None,
        importance: str | ImportanceCollector = "ewc",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.regularizer = ParameterChangeReg(1.0) if regularizer is None else regularizer
        if isinstance(importance, ImportanceCollector):
            if options:
                raise ValueError(
                    "ParameterChange: options go with an importance name, not a collector; "
                    "give them to the collector."
                )
            self.collector = importance
            return
        if importance not in COLLECTORS:
            raise ValueError(
                f"ParameterChange: importance {importance!r} is unknown; choose one of "
                f"{', '.join(IMPORTANCES)}."
            )
        try:
            self.collector = COLLECTORS[importance](**dict(options or {}))
        except TypeError as exc:
            raise ValueError(
                f"ParameterChange({importance!r}): {exc}; see ParameterChange's options."
            ) from None

    def setup(self, algorithm: CLAlgorithm, name: str) -> None:
        """Bind the collector to the algorithm's parameters."""
        self.collector.bind(algorithm)

    def forward(self, ctx: StepContext) -> Tensor:
        """$\\lambda \\sum_{\\text{penalties}} \\sum_i \\Omega_i (\\theta_i - \\theta^*_i)^2$."""
        total = ctx.logits.new_zeros(())
        penalties = self.collector.penalties()
        if not penalties:
            return total
        self.collector.follow(ctx.x.device)  # may replace the stored tensors: read them again
        current = self.collector.protected_parameters()
        for importance, anchors in self.collector.penalties():
            params = {n: crop_to(current[n], a.shape) for n, a in anchors.items()}
            total = total + self.regularizer(params, anchors, importance)
        return total

    def on_task_start(self, algorithm: CLAlgorithm, task_id: int, datamodule: Any) -> None:
        """The collector's task start (SI and MAS grow their state with a CIL head)."""
        self.collector.on_task_start(task_id, datamodule)

    def on_task_end(self, algorithm: CLAlgorithm, task_id: int, datamodule: Any) -> None:
        """The collector's task end: the new importance and anchor."""
        self.collector.on_task_end(task_id, datamodule)

    def after_optimizer_step(self, algorithm: CLAlgorithm) -> None:
        """The collector's step hook (SI adds the step to its path integral)."""
        self.collector.after_optimizer_step()

    def cl_state(self) -> dict[str, Any]:
        """The collector's state (anchors, importances)."""
        return self.collector.state_dict()

    def load_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore the collector's state."""
        self.collector.load_state_dict(state)

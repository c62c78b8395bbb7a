"""`Composed`: an algorithm whose objective is a sum of named terms, written as data (YAML).

    # configs/cl_algorithm/lwf_bc.yaml
    _target_: clarena.cl_algorithms.Composed
    terms:
      ce: {_target_: clarena.cl_algorithms.terms.CrossEntropy}
      distillation:
        _target_: clarena.cl_algorithms.terms.Distillation
        regularizer: {_target_: clarena.cl_algorithms.regularizers.DistillationReg, factor: 1.0}

See `docs/composing.md` and `clarena.cl_algorithms.terms`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, cast

from torch import Tensor, nn

from clarena.cl_algorithms.base import Batch, CLAlgorithm
from clarena.cl_algorithms.class_memory import ClassMemory
from clarena.cl_algorithms.replay_buffer import ReplayBuffer
from clarena.cl_algorithms.step_context import StepContext
from clarena.cl_algorithms.terms import NEEDS, CrossEntropy, Term

REPLAY_FORWARDS: tuple[str, ...] = ("joint", "separate")
"""How the current and the replayed batch go through the model (see `StepContext`)."""


class Composed(CLAlgorithm):
    """A continual-learning algorithm written as data: the objective is the sum of named terms,

    $$\\mathcal{L} = \\sum_{k} T_k(\\text{ctx}),$$

    each term $T_k$ a regularizer plus what it is applied to (`clarena.cl_algorithms.terms`),
    all evaluated on one shared `StepContext`. The state collectors are built only when a term
    declares it needs them: the h1 snapshot (`"h1"`), the replay buffer (`"replay"`, with stored
    logits for `"stored_logits"`); a term's own collector (EWC's Fisher, SI's path integral, MAS's
    importance) lives in the term. The loss terms are the names of `terms`, in their order.
    After the terms, the current batch is offered to the buffer (with its logits when stored).

    Args:
        terms: name → `Term`; default `{"ce": CrossEntropy()}` (Finetuning).
        buffer_size: the replay buffer's capacity; must be > 0 when a term needs replay (it is
            not built otherwise) and there is no `budget_per_class` or `memory_size`.
        replay_batch_size: samples drawn from the buffer per step (default: the batch size).
        class_balanced: use class-balancing reservoir sampling.
        buffer_seed: seed of the buffer's own random generator.
        budget_per_class: replay from a `ClassMemory` instead of the reservoir buffer: this many
            random samples of each class, stored at the end of each task (the reference
            implementation of van de Ven et al. 2022).
        memory_size: replay from a `ClassMemory` of this total size, shared evenly by the classes
            seen so far and stored at the end of each task (instead of `budget_per_class`).
        replay_forward: `"joint"` (the current and replayed batch in one forward pass) or
            `"separate"` (one pass each, the current batch first).
        *args: `backbone, heads, optimizer, scenario` as `CLAlgorithm`.
        **kwargs: as `CLAlgorithm` (`lr_scheduler`).

    Raises:
        ValueError: for a term that is not a `Term`, a term needing replay without a buffer, or a
            term refusing the scenario.
    """

    def __init__(
        self,
        *args: Any,
        terms: Mapping[str, Term] | None = None,
        buffer_size: int = 0,
        replay_batch_size: int | None = None,
        class_balanced: bool = False,
        buffer_seed: int = 0,
        budget_per_class: int | None = None,
        memory_size: int | None = None,
        replay_forward: str = "joint",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        who = type(self).__name__
        if replay_forward not in REPLAY_FORWARDS:
            raise ValueError(
                f"{who}: replay_forward must be one of {', '.join(REPLAY_FORWARDS)}, got "
                f"{replay_forward!r}."
            )
        self.replay_forward = replay_forward
        terms = {"ce": CrossEntropy()} if terms is None else {str(k): v for k, v in terms.items()}
        if not terms:
            raise ValueError("Composed: terms is empty; give at least one term, e.g. ce.")
        for name, term in terms.items():
            if not isinstance(term, Term):
                raise ValueError(
                    f"{who}: term {name!r} is a {type(term).__name__}, not a Term; wrap the "
                    "regularizer in a term of clarena.cl_algorithms.terms (e.g. "
                    "terms.Distillation(regularizer=...))."
                )
        self.terms = nn.ModuleDict(terms)
        needs: set[str] = set()
        for term in terms.values():
            needs |= term.requirements(self.scenario)
        unknown = needs - set(NEEDS)
        if unknown:
            raise ValueError(f"{who}: unknown needs {sorted(unknown)}; terms may ask {NEEDS}.")
        self.needs = frozenset(needs)
        """What the terms asked of the step context."""
        # `needs_h1` is a class variable of `CLAlgorithm`; a `Composed` decides it per instance,
        # from its terms (what `nn.Module.__setattr__` does with a bool, without the ClassVar).
        object.__setattr__(self, "needs_h1", bool(needs & {"h1", "h1_replay"}))
        if replay_batch_size is not None and replay_batch_size <= 0:
            raise ValueError(f"{who}: replay_batch_size must be positive, got {replay_batch_size}.")
        self.buffer: ReplayBuffer | None = None
        self.class_memory: ClassMemory | None = None
        replaying = {"replay", "extra_replay"}
        if budget_per_class is not None or memory_size is not None:
            option = "budget_per_class" if memory_size is None else "memory_size"
            if "stored_logits" in needs or not needs & replaying:
                raise ValueError(
                    f"{who}: {option} needs a term that replays samples and none that replays "
                    f"stored logits; drop {option} or use buffer_size."
                )
            self.class_memory = ClassMemory(
                budget_per_class, self.scenario == "TIL", buffer_seed, memory_size=memory_size
            )
        elif needs & (replaying | {"stored_logits"}):
            if buffer_size <= 0:
                users = [t for t in terms.items() if t[1].requirements(self.scenario) & replaying]
                notes = [f" ({t.replay_note})" for _, t in users if t.replay_note]
                raise ValueError(
                    f"{who} in {self.scenario} needs a replay buffer (set buffer_size > 0): "
                    f"term(s) {', '.join(repr(n) for n, _ in users)} replay samples in "
                    f"{self.scenario}{''.join(notes[:1])}."
                )
            self.buffer = ReplayBuffer(
                buffer_size,
                class_balanced=class_balanced,
                seed=buffer_seed,
                per_task_classes=self.scenario == "TIL",
            )
        self.replay_batch_size = replay_batch_size
        for name, term in terms.items():
            term.setup(self, name)

    def _named_terms(self) -> list[tuple[str, Term]]:
        # `nn.ModuleDict` is not generic: its values are typed `Module`; every one is a `Term`.
        return [(name, cast(Term, term)) for name, term in self.terms.items()]

    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """The base class's start (h1 when a term needs it, heads), then each term's."""
        super().on_task_start(task_id, datamodule)
        for _, term in self._named_terms():
            term.on_task_start(self, task_id, datamodule)

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """The class memory's new samples, then each term's task end (importances, anchors)."""
        super().on_task_end(task_id, datamodule)
        if self.class_memory is not None:
            self.class_memory.add_task(datamodule.train_dataloader())
        for _, term in self._named_terms():
            term.on_task_end(self, task_id, datamodule)

    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """Every term on one shared step context; then offer the batch to the buffer."""
        ctx = StepContext(self, batch)
        values = {name: term(ctx) for name, term in self._named_terms()}
        if self.buffer is not None:
            if "stored_logits" in self.needs:
                widths = self.heads.num_logits(ctx.task_ids)
                self.buffer.add(ctx.x, ctx.y, ctx.task_ids, ctx.logits.detach(), widths)
            else:
                self.buffer.add(ctx.x, ctx.y, ctx.task_ids)
        return values

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """Take the step (Lightning's default), then call each term's `after_optimizer_step`."""
        super().optimizer_step(*args, **kwargs)
        for _, term in self._named_terms():
            term.after_optimizer_step(self)

    def extra_cl_state(self) -> dict[str, Any]:
        """The replay buffer (None without one), the class memory and each term's own state."""
        state = {
            "buffer": None if self.buffer is None else self.buffer.state_dict(),
            "terms": {name: term.cl_state() for name, term in self._named_terms()},
        }
        if self.class_memory is not None:
            state["class_memory"] = self.class_memory.state_dict()
        return state

    legacy_term: ClassVar[str | None] = None
    """The term whose state a checkpoint of this algorithm held alone before it became a
    composition (EWC's, SI's, MAS's): such a state is loaded into that term."""

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore the buffer and the terms' states."""
        if self.legacy_term is not None and "terms" not in state:
            state = {"buffer": state.get("buffer"), "terms": {self.legacy_term: state}}
        if self.buffer is not None and state.get("buffer") is not None:
            self.buffer.load_state_dict(state["buffer"])
        if self.class_memory is not None:
            self.class_memory.load_state_dict(state["class_memory"])
        saved = state.get("terms", {})
        for name, term in self._named_terms():
            if name in saved:
                term.load_cl_state(saved[name])

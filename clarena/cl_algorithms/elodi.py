"""ELODI: an update distilled from an ensemble of reference models on the top-K logits."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clarena.cl_algorithms.composed import Composed
from clarena.cl_algorithms.deployed import DeployedModel
from clarena.cl_algorithms.regularizers import LogitDifferenceInhibitionReg
from clarena.cl_algorithms.snapshot import Snapshot, cpu_state
from clarena.cl_algorithms.step_context import StepContext
from clarena.cl_algorithms.terms import CrossEntropy, Term

#: How `ELODI` initialises the reference models it trains: from the model at the start of the
#: update (as the plain update starts), or freshly at random.
ENSEMBLE_INITS: tuple[str, ...] = ("current", "random")

#: Epoch numbers of member $m$ start at $m \cdot$ this, so that each member sees its own orders.
MEMBER_EPOCH_STRIDE = 100_000


class EnsembleLDI(Term):
    """The LDI term towards the mean logits of the algorithm's reference models on the current
    batch; 0 on the first task (there is nothing to update yet) or without reference models.

    Args:
        regularizer: a `LogitDifferenceInhibitionReg`.
    """

    def __init__(self, regularizer: nn.Module) -> None:
        super().__init__()
        self.regularizer = regularizer

    def forward(self, ctx: StepContext) -> Tensor:
        """$\\lambda \\cdot \\mathrm{LDI}(f(x), \\bar z(x))$."""
        algorithm = ctx.algorithm
        members = getattr(algorithm, "members", [])
        if algorithm.task_id < 2 or not members:
            return ctx.logits.new_zeros(())
        with torch.no_grad():
            reference = torch.stack([m.to(ctx.x.device)(ctx.x, ctx.task_ids) for m in members])
        return self.regularizer(ctx.logits, reference)


def _reinitialise(module: nn.Module) -> None:
    for layer in module.modules():
        reset = getattr(layer, "reset_parameters", None)
        if callable(reset):
            reset()


class ELODI(Composed):
    """Ensemble Logit Difference Inhibition (Zhao et al., CVPR 2022): each update (task $t \\ge 2$)
    is trained with cross-entropy plus the LDI term towards the mean logits $\\bar z$ of $M$
    reference models (`clarena.cl_algorithms.regularizers.elodi`),

    $$\\mathcal{L} = \\mathrm{CE}(f(x), y) + \\frac{\\lambda}{B} \\sum_{i} \\sum_{k \\in S_i}
    1[|\\Delta_{ik}| > \\xi] \\frac{1}{p} |\\Delta_{ik}|^p,
    \\qquad \\Delta = f(x) - \\bar z(x).$$

    The reference models are either trained here, at the start of each update: `ensemble_size`
    models on the update's training data with cross-entropy for `ensemble_epochs` epochs, each with
    its own seed (its own data order, and its own initialisation with `ensemble_init="random"`),
    under a forked random state so the update's own stream is the same whatever their number; or
    loaded (`ensemble`, from `update.ensemble`: run folders or weights files of models trained on
    the update's data). The update itself costs one model at inference. Task 1 (the old model, or
    the deployed one) is trained with cross-entropy alone. The reference models are part of the
    checkpointed CL state. Loss terms: `ce`, `ldi`.

    Args:
        lambda_c: $\\lambda \\ge 0$, the strength of the LDI term.
        top_k: $K$, the classes taken from each model's ranking.
        margin: $\\xi \\ge 0$.
        p: the norm $p \\ge 1$.
        ensemble_size: $M$ reference models to train at each update (0: `ensemble` is required).
        ensemble_epochs: epochs of each reference model's training (-1: no limit, as
            Lightning's `max_epochs`).
        ensemble_max_steps: optimizer steps of each reference model at most (-1: no limit); with
            the two set as the trainer's, each reference model is trained as the update is.
        ensemble_init: `"current"` or `"random"` (see `ENSEMBLE_INITS`).
        ensemble_seed: the seed of the reference models (member $m$ of task $t$ uses
            `ensemble_seed + 1000 * t + m`).
        ensemble: loaded reference models (`clarena.cl_algorithms.deployed.DeployedModel`s).
        **kwargs: as `Composed` (the replay options are unused) and `CLAlgorithm`.

    Raises:
        ValueError: without reference models to train or load, or on a bad option.
    """

    supported_scenarios = ("DIL", "DataIL")

    def __init__(
        self,
        *args: Any,
        lambda_c: float = 1.0,
        top_k: int = 3,
        margin: float = 0.0,
        p: float = 2.0,
        ensemble_size: int = 3,
        ensemble_epochs: int = 1,
        ensemble_max_steps: int = -1,
        ensemble_init: str = "current",
        ensemble_seed: int = 0,
        ensemble: Sequence[DeployedModel] | None = None,
        **kwargs: Any,
    ) -> None:
        regularizer = LogitDifferenceInhibitionReg(lambda_c, top_k, margin, p)
        terms: dict[str, Term] = {"ce": CrossEntropy(), "ldi": EnsembleLDI(regularizer)}
        super().__init__(*args, terms=terms, **kwargs)
        if ensemble_init not in ENSEMBLE_INITS:
            raise ValueError(
                f"ELODI: ensemble_init must be one of {', '.join(ENSEMBLE_INITS)}, got "
                f"{ensemble_init!r}."
            )
        if ensemble_size < 0 or (ensemble_epochs < 1 and ensemble_max_steps < 1):
            raise ValueError(
                f"ELODI: ensemble_size must be >= 0 and ensemble_epochs or ensemble_max_steps "
                f">= 1, got {ensemble_size}, {ensemble_epochs} and {ensemble_max_steps}."
            )
        loaded = list(ensemble or [])
        if ensemble_size == 0 and not loaded:
            raise ValueError(
                "ELODI needs reference models: set cl_algorithm.ensemble_size > 0 to train them "
                "at each update, or list trained ones in update.ensemble."
            )
        if ensemble_size > 0 and loaded:
            raise ValueError(
                "ELODI: give either cl_algorithm.ensemble_size (train the reference models) or "
                "update.ensemble (load them), not both."
            )
        for model in loaded:
            model.check_backbone(self.backbone)
        self.ensemble_size = int(ensemble_size)
        self.ensemble_epochs = int(ensemble_epochs)
        self.ensemble_max_steps = int(ensemble_max_steps)
        self.ensemble_init = ensemble_init
        self.ensemble_seed = int(ensemble_seed)
        self.loaded_ensemble = loaded
        self._set_members([])

    @property
    def ldi(self) -> nn.Module:
        """The LDI regulariser (of the term `ldi`)."""
        return self.terms["ldi"].regularizer  # type: ignore[return-value]

    @property
    def members(self) -> list[Snapshot]:
        """The frozen reference models of the current update (not registered submodules, like
        h1: they have no trainable parameters and are saved by `extra_cl_state`)."""
        return self.__dict__["_members"]

    def _set_members(self, members: list[Snapshot]) -> None:
        object.__setattr__(self, "_members", members)

    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """Start the task, then, for an update, train or load the reference models."""
        super().on_task_start(task_id, datamodule)
        if task_id < 2:
            return
        if self.loaded_ensemble:
            if not self.members:
                self._set_members([self._loaded(model) for model in self.loaded_ensemble])
        else:
            self._set_members(self._trained_members(task_id, datamodule))

    def _loaded(self, model: DeployedModel) -> Snapshot:
        backbone, heads = copy.deepcopy(self.backbone), copy.deepcopy(self.heads)
        model.load_into(backbone, heads)
        return Snapshot(backbone, heads)

    def _trained_members(self, task_id: int, datamodule: Any) -> list[Snapshot]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            raise ValueError(
                "ELODI trains its reference models in one process (each DDP process would train "
                "its own on its shard); train them in a single-process run and load them with "
                "update.ensemble."
            )
        device = self.fit_device or self._model_device()
        loader = datamodule.train_dataloader()
        members = []
        for m in range(self.ensemble_size):
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(self.ensemble_seed + 1000 * task_id + m)
                backbone = copy.deepcopy(self.backbone).to(device)
                heads = copy.deepcopy(self.heads).to(device)
                if self.ensemble_init == "random":
                    _reinitialise(backbone)
                    _reinitialise(heads)
                backbone.train()
                heads.train()
                optimizer = self.optimizer_factory([*backbone.parameters(), *heads.parameters()])
                set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
                epoch, steps = 0, 0
                while self._more(epoch, steps):
                    if set_epoch is not None:  # clarena's loaders: a seeded order per epoch
                        set_epoch((m + 1) * MEMBER_EPOCH_STRIDE + epoch)
                    for x, y, task_ids in loader:
                        x, y, task_ids = x.to(device), y.to(device), task_ids.to(device)
                        loss = F.cross_entropy(heads(backbone(x), task_ids), y)
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                        steps += 1
                        if not self._more(epoch, steps):
                            break
                    epoch += 1
            members.append(Snapshot(backbone, heads))
        return members

    def _more(self, epoch: int, steps: int) -> bool:
        """Whether a reference model trains on (within its epoch and step limits)."""
        epochs_left = self.ensemble_epochs < 1 or epoch < self.ensemble_epochs
        steps_left = self.ensemble_max_steps < 1 or steps < self.ensemble_max_steps
        return epochs_left and steps_left

    def extra_cl_state(self) -> dict[str, Any]:
        """`Composed`'s state and the reference models' weights."""
        state = super().extra_cl_state()
        state["elodi_members"] = [
            {"backbone": cpu_state(m.backbone), "heads": cpu_state(m.heads)} for m in self.members
        ]
        return state

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore `Composed`'s state and the reference models."""
        super().load_extra_cl_state(state)
        members = []
        for saved in state.get("elodi_members") or []:
            backbone, heads = copy.deepcopy(self.backbone), copy.deepcopy(self.heads)
            backbone.load_state_dict(saved["backbone"])
            heads.load_state_dict(saved["heads"])
            members.append(Snapshot(backbone, heads))
        self._set_members(members)

"""`CLAlgorithm`, the LightningModule every continual-learning algorithm derives from."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from lightning import LightningModule
from torch import Tensor, nn

from clarena.cl_algorithms.deployed import DeployedModel
from clarena.cl_algorithms.snapshot import Snapshot, cpu_state
from clarena.cl_algorithms.train_terms import TrainTermsLog
from clarena.heads import Heads
from clarena.heads.heads import SCENARIOS
from clarena.metrics.predictions import task_predictions

Batch = tuple[Tensor, Tensor, Tensor]
"""A batch `(x, y, task_ids)` (see `docs/architecture.md`)."""

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
"""A `functools.partial`-style optimizer taking the parameters (Hydra `_partial_: true`)."""


class CLAlgorithm(LightningModule):
    """Base of the continual-learning algorithms.

    It owns the backbone and heads, the task counter (tasks are numbered from 1), the frozen
    snapshot `h1` of the model from before the current task (when `needs_h1`), the optimizer set-up
    per task, and the test predictions. An algorithm implements `loss_terms(batch)`
    returning named scalar terms; `training_step` sums them and logs the mean of each over
    `trainer.log_every_n_steps` steps as `train/<name>` (of the sum as `train/loss`), and stops the
    run with `NonFiniteLossError` when a term is NaN or infinite (`TrainTermsLog`). It may extend
    `on_task_start` / `on_task_end` (call `super()`), and `extra_cl_state` /
    `load_extra_cl_state` for its own checkpointed state.

    The loop per task t (`clarena.run.task_loop.run_tasks`): `on_task_start(t, datamodule)`,
    `trainer.fit`, `trainer.test` (the trainer is the loop, `clarena.run.loop.Loop`, which calls
    the hooks in the order Lightning's Trainer does; each `test_step` returns its predictions, which
    the `RecordPredictions` recorder adds to the results), `on_task_end(t, datamodule)`.

    Args:
        backbone: feature extractor exposing `output_dim`.
        heads: from `clarena.heads.make_heads(scenario, backbone.output_dim)`.
        optimizer: a factory taking the parameters, e.g.
            `functools.partial(torch.optim.SGD, lr=0.1)`; called at the start of every task's
            `fit`, so each task gets a fresh optimizer.
        scenario: `"TIL"`, `"CIL"`, `"DIL"` or `"DataIL"`; must be in `supported_scenarios`.
        lr_scheduler: optional factory taking the optimizer (Hydra `_partial_: true`).
        keep_optimizer_state: carry the optimizer's state (Adam's moments and step count) from
            one task to the next instead of starting each task with a fresh one (see
            `carry_optimizer_state`); the reference implementation of van de Ven et al. (2022)
            keeps one Adam for the whole sequence.
        deployed_model: the weights of a deployed model to update (`update.old_model`,
            `clarena.cl_algorithms.deployed`): task 1 loads them and changes nothing, so the
            deployed model is the model after task 1, h1 of the next task and the old model of its
            compatibility.

    Raises:
        ValueError: when the algorithm does not support `scenario`, the heads were built for
            another scenario, or `deployed_model` does not fit the backbone.
    """

    supported_scenarios: ClassVar[tuple[str, ...]] = SCENARIOS
    """The scenarios the algorithm supports; others are refused at construction."""
    cumulative_data: ClassVar[bool] = False
    """True when the algorithm trains on all tasks' data so far (the pipeline then calls
    `datamodule.setup_task(t, cumulative=True)`)."""
    needs_h1: ClassVar[bool] = False
    """True when the algorithm uses the frozen snapshot `h1` of the model from before the task."""

    def __init__(
        self,
        backbone: nn.Module,
        heads: Heads,
        optimizer: OptimizerFactory,
        scenario: str,
        lr_scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
        keep_optimizer_state: bool = False,
        deployed_model: DeployedModel | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if scenario not in self.supported_scenarios:
            raise ValueError(
                f"{name} does not support scenario {scenario!r}; it supports "
                f"{', '.join(self.supported_scenarios)}."
            )
        heads_scenario = getattr(heads, "scenario", scenario)
        if heads_scenario != scenario:
            raise ValueError(
                f"{name}: the heads were built for {heads_scenario!r} but the scenario is "
                f"{scenario!r}; build them with make_heads({scenario!r}, backbone.output_dim)."
            )
        if not callable(optimizer):
            raise ValueError(
                f"{name}: optimizer must be a factory taking the parameters (Hydra `_partial_: "
                f"true`), got {type(optimizer).__name__}."
            )
        if deployed_model is not None:
            deployed_model.check_backbone(backbone)
        self.deployed_model = deployed_model
        """The deployed model that task 1 loads instead of training (None: task 1 trains)."""
        self.backbone = backbone
        self.heads = heads
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.keep_optimizer_state = bool(keep_optimizer_state)
        self.optimizer_state: dict[str, dict[str, Tensor]] = {}
        """With `keep_optimizer_state`: the optimizer's per-parameter state at the end of the last
        task, by parameter name (CPU tensors)."""
        self.scenario = scenario
        self.task_id = 0
        """The current task (0 before the first)."""
        self._set_h1(None)
        self._train_terms = TrainTermsLog()
        self.fit_device: torch.device | None = None
        """The device of the last `fit` (Lightning moves the model back to the CPU afterwards);
        task-end computations such as EWC's Fisher run there."""

    # ------------------------------------------------------------------ model
    def forward(self, x: Tensor, task_ids: Tensor) -> Tensor:
        """Logits of the current model for inputs `x` from tasks `task_ids`."""
        return self.heads(self.backbone(x), task_ids)

    @property
    def h1(self) -> Snapshot | None:
        """The frozen model from before the current task (None on the first task, or when the
        algorithm does not use one). It is deliberately not a registered submodule: it has no
        trainable parameters, stays in eval mode whatever `train()` does, follows the batch's device
        when used, and is saved by `cl_state_dict`."""
        return self.__dict__["_h1"]

    def _set_h1(self, snapshot: Snapshot | None) -> None:
        object.__setattr__(self, "_h1", snapshot)

    def _h1_on(self, device: torch.device) -> Snapshot:
        h1 = self.h1
        if h1 is None:
            raise ValueError(f"{type(self).__name__}: there is no h1 before the second task.")
        p = next(h1.parameters(), None)
        if p is not None and p.device != device:
            h1.to(device)
        return h1

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The backbone's and heads' parameters that require gradients (never `h1`'s)."""
        params = list(self.backbone.parameters()) + list(self.heads.parameters())
        return [p for p in params if p.requires_grad]

    def snapshot(self) -> Snapshot:
        """A frozen deep copy of the current model (backbone + heads)."""
        return Snapshot(copy.deepcopy(self.backbone), copy.deepcopy(self.heads))

    @torch.no_grad()
    def h1_logits(self, x: Tensor, task_ids: Tensor) -> Tensor:
        """Logits of the frozen `h1` (no gradient, eval mode)."""
        return self._h1_on(x.device)(x, task_ids)

    def _model_device(self) -> torch.device:
        p = next(self.backbone.parameters(), None)
        return torch.device("cpu") if p is None else p.device

    # ------------------------------------------------------------------ task hooks
    def on_task_start(self, task_id: int, datamodule: Any) -> None:
        """Start task `task_id`: snapshot h1 (when `needs_h1` and `task_id > 1`), then set up the
        heads with `datamodule.output_dim(task_id)`."""
        if task_id != self.task_id + 1:
            raise ValueError(
                f"{type(self).__name__}: expected task {self.task_id + 1} next, got {task_id} "
                "(tasks are numbered from 1 and run in order)."
            )
        if self.needs_h1 and task_id > 1:
            self._set_h1(self.snapshot())
        self.heads.setup_task(task_id, int(datamodule.output_dim(task_id)))
        if task_id == 1 and self.deployed_model is not None:
            self.deployed_model.load_into(self.backbone, self.heads)
        self.heads.to(self._model_device())
        self.task_id = task_id

    def on_task_end(self, task_id: int, datamodule: Any) -> None:
        """End task `task_id` (nothing to do in the base class)."""
        if task_id != self.task_id:
            raise ValueError(
                f"{type(self).__name__}: on_task_end({task_id}) but the current task is "
                f"{self.task_id}."
            )

    # ------------------------------------------------------------------ training
    def loss_terms(self, batch: Batch) -> dict[str, Tensor]:
        """The named scalar loss terms of a training batch; their sum is minimised."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss_terms(batch).")

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Sum the terms of `loss_terms(batch)` and return the sum.

        The terms are recorded on the device (no host synchronisation in the step); every
        `trainer.log_every_n_steps` steps `TrainTermsLog` reads the steps since the last write
        once, stops the run when a term was NaN or infinite, and logs each term's mean as
        `train/<name>` and the mean sum as `train/loss`.
        """
        if self.task_id == 1 and self.deployed_model is not None:
            # the deployed model is not trained: a loss reaching no parameter (none gets a
            # gradient, so no optimizer step changes one, weight decay included)
            return torch.zeros((), device=self.device, requires_grad=True)
        terms = self.loss_terms(batch)
        values = torch.stack(list(terms.values()))
        loss = values.sum()
        self._train_terms.record(self, terms, values, loss)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Log the cross-entropy and accuracy on the validation batch (`val/ce`, `val/acc`)."""
        x, y, task_ids = batch
        logits = self(x, task_ids)
        self.log("val/ce", F.cross_entropy(logits, y), batch_size=x.shape[0])
        acc = (logits.argmax(1) == y).float().mean()
        self.log("val/acc", acc, prog_bar=True, batch_size=x.shape[0])

    def log_step_value(self, name: str, value: Tensor) -> None:
        """Log a per-step value outside the loss (A-GEM's projection flag): through the lean
        loop's `record_step_value` (interval means, no host synchronisation), or Lightning's
        `self.log` under a Trainer; nothing outside a loop (a test calling a hook directly)."""
        trainer = self._trainer
        if trainer is None:
            return
        record = getattr(trainer, "record_step_value", None)
        if record is not None:
            record(name, value)
        else:
            self.log(name, value, batch_size=1)

    def on_fit_start(self) -> None:
        """Remember the training device for the task-end computations."""
        self.fit_device = self.device

    def configure_callbacks(self) -> list[Any]:
        """The algorithm's own callback, `TrainTermsLog`'s end-of-epoch check and end-of-fit
        write (a callback, so that subclasses may override any hook without calling `super()`)."""
        return [self._train_terms]

    def named_trainable_parameters(self) -> dict[str, nn.Parameter]:
        """`trainable_parameters()` by name (`backbone.<name>`, `heads.<name>`)."""
        trainable = {id(p) for p in self.trainable_parameters()}
        named = [("backbone." + n, p) for n, p in self.backbone.named_parameters()]
        named += [("heads." + n, p) for n, p in self.heads.named_parameters()]
        return {n: p for n, p in named if id(p) in trainable}

    def on_train_end(self) -> None:
        """With `keep_optimizer_state`, keep the optimizer's state for the next task."""
        if self.keep_optimizer_state:
            optimizer = self.trainer.optimizers[0]
            self.optimizer_state = {
                name: {k: v.detach().cpu().clone() for k, v in optimizer.state[p].items()}
                for name, p in self.named_trainable_parameters().items()
                if p in optimizer.state
            }

    def configure_optimizers(self) -> Any:
        """A fresh optimizer (and scheduler) over `trainable_parameters()` each task; with
        `keep_optimizer_state`, loaded with the last task's state (`carry_optimizer_state`)."""
        optimizer = self.optimizer_factory(self.trainable_parameters())
        if self.keep_optimizer_state and self.optimizer_state:
            params = self.named_trainable_parameters()
            carry_optimizer_state(optimizer, params, self.optimizer_state)
        if self.lr_scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.lr_scheduler_factory(optimizer)}

    # ------------------------------------------------------------------ test
    def test_logits(self, x: Tensor, task_ids: Tensor) -> Tensor:
        """The scores `test_step` predicts from (default: `forward`; iCaRL: nearest mean)."""
        return self(x, task_ids)

    @torch.no_grad()
    def test_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> Any:
        """Predict a test batch and return, per task, the task-agnostic predictions (`preds`,
        argmax over every column), the task-aware ones (`preds_task_aware`, argmax over the task's
        own classes) and the targets (`clarena.metrics.predictions.task_predictions`); the
        pipeline's `RecordPredictions` callback collects them into the results. Tasks the heads
        cannot predict yet (a TIL or CIL task not trained yet, when the dataset tests every task)
        are skipped."""
        x, y, task_ids = batch
        tasks = [int(t) for t in torch.unique(task_ids).tolist()]
        if not all(self.heads.knows(t) for t in tasks):
            known = torch.tensor([self.heads.knows(int(t)) for t in task_ids.tolist()])
            if not known.any():
                return {}
            known = known.to(task_ids.device)
            x, y, task_ids = x[known], y[known], task_ids[known]
        logits = self.test_logits(x, task_ids)
        return task_predictions(logits, y, task_ids, self.heads.class_range)

    # ------------------------------------------------------------------ checkpoint
    def cl_state_dict(self) -> dict[str, Any]:
        """Everything the task sequence needs to resume, as weights-only-safe values (tensors on the
        CPU, numbers, strings, lists, dicts): loads with `torch.load(..., weights_only=True)`."""
        h1 = None
        if self.h1 is not None:
            h1 = {
                "heads_classes": dict(self.h1.heads.task_classes),
                "backbone": cpu_state(self.h1.backbone),
                "heads": cpu_state(self.h1.heads),
            }
        state: dict[str, Any] = {
            "algorithm": type(self).__name__,
            "scenario": self.scenario,
            "task_id": self.task_id,
            "heads_classes": dict(self.heads.task_classes),
            "backbone": cpu_state(self.backbone),
            "heads": cpu_state(self.heads),
            "h1": h1,
            "optimizer_state": self.optimizer_state,
        }
        state.update(self.extra_cl_state())
        return state

    def load_cl_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `cl_state_dict()` into a freshly constructed algorithm of the same config."""
        name = type(self).__name__
        if state["algorithm"] != name or state["scenario"] != self.scenario:
            raise ValueError(
                f"{name}: the checkpoint is of {state['algorithm']} in {state['scenario']}, not "
                f"{name} in {self.scenario}; resume with the run's original config."
            )
        device = self._model_device()
        for t, n in sorted(state["heads_classes"].items()):
            self.heads.setup_task(int(t), int(n))
        self.heads.to(device)
        self.backbone.load_state_dict(state["backbone"])
        self.heads.load_state_dict(state["heads"])
        self._set_h1(None)
        if state["h1"] is not None:
            heads = self.heads.blank()
            for t, n in sorted(state["h1"]["heads_classes"].items()):
                heads.setup_task(int(t), int(n))
            backbone = copy.deepcopy(self.backbone)
            backbone.load_state_dict(state["h1"]["backbone"])
            heads.load_state_dict(state["h1"]["heads"])
            self._set_h1(Snapshot(backbone, heads).to(device))
        self.task_id = int(state["task_id"])
        self.optimizer_state = dict(state.get("optimizer_state") or {})
        self.load_extra_cl_state(state)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put the algorithm's own state (replay buffer, ...) into Lightning's checkpoints too, so a
        run resumed inside a task continues with the state it had."""
        checkpoint["clarena_extra_cl_state"] = self.extra_cl_state()
        checkpoint["clarena_task_id"] = self.task_id

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore what `on_save_checkpoint` added."""
        if "clarena_extra_cl_state" in checkpoint:
            self.load_extra_cl_state(checkpoint["clarena_extra_cl_state"])

    def extra_cl_state(self) -> dict[str, Any]:
        """An algorithm's own checkpointed state (weights-only-safe), merged into the CL state."""
        return {}

    def results_record(self) -> dict[str, Any]:
        """What the algorithm reports of its own choices into the results (numbers, strings, lists
        and dicts; `metrics.json`, key `algorithm`; BCWI's $\\alpha$): the task loop passes it to
        `CLResults.set_algorithm_record` after every task. Nothing by default."""
        return {}

    def load_extra_cl_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `extra_cl_state` saved."""


def carry_optimizer_state(
    optimizer: torch.optim.Optimizer,
    params: Mapping[str, nn.Parameter],
    saved: Mapping[str, Mapping[str, Tensor]],
) -> None:
    """Load the per-parameter state `saved` (by name, from the previous task) into a fresh
    `optimizer` over `params`, as if one optimizer had run the whole sequence over a layer as wide
    as the widest one (the reference's 10-unit output layer with "active units").

    A parameter that grew along its first dimension (a class-incremental head) gets zero state on
    its new rows; a parameter without saved state (a new task's head) gets zero state. Counters
    (Adam's `step`) come from any saved parameter: the rows of a layer that had no gradient yet
    keep zero moments under Adam, and their bias correction uses the global step.

    Raises:
        ValueError: when a saved state cannot be fitted to its parameter's new shape.
    """
    template = next(iter(saved.values()), None)
    for name, p in params.items():
        state = saved.get(name)
        fitted: dict[str, Tensor] = {}
        for key, value in (state or template or {}).items():
            if value.dim() == 0:
                fitted[key] = value.clone().to(p.device)
            elif state is None:
                fitted[key] = torch.zeros_like(p)
            elif value.shape[1:] != p.shape[1:] or value.shape[0] > p.shape[0]:
                raise ValueError(
                    f"carry_optimizer_state: the saved {key!r} of {name} has shape "
                    f"{tuple(value.shape)}, which does not fit the parameter's {tuple(p.shape)}; "
                    "start each task with a fresh optimizer (keep_optimizer_state: false)."
                )
            else:
                fitted[key] = torch.zeros_like(p)
                fitted[key][: value.shape[0]] = value.to(p.device, p.dtype)
        if fitted:
            optimizer.state[p] = fitted

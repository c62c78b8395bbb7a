"""The lean loop: one task of one algorithm trained and tested on one device, without a Trainer.

Lightning's `Trainer` costs about 0.6 ms per optimizer step on top of the step (about 40 hook
calls, each through its profiler and callback dispatch, the closure of automatic optimisation,
the data fetcher; `benchmarks/README.md`); for a small model on a CPU, or any model on a GPU, that
is most of the step. `LeanTrainer` runs the same `CLAlgorithm` (a LightningModule) with a plain
loop that calls the module's hooks in the order Lightning calls them, so a run gives the same
numbers, bit for bit, through either loop (`tests/integration/test_results_unchanged.py`):

    setup("fit") (datamodule, module), on_fit_start, on_train_start
    every epoch e: loader.sampler.set_epoch(e), on_train_epoch_start
        every batch: on_train_batch_start,
                     optimizer_step(closure = training_step, optimizer_zero_grad, backward;
                                    on_before_optimizer_step between the closure and the step),
                     on_train_batch_end
        epoch-interval LR schedulers (after a complete epoch), on_train_epoch_end
    on_train_end, on_fit_end, teardown("fit")

and tests with `setup("test")`, `on_test_epoch_start`, `test_step` per batch of every test
loader (under `torch.inference_mode`, as Lightning), `on_test_epoch_end`, `teardown("test")`.
The pipeline's duties are called directly, not through hooks: the loss-term record
(`TrainTermsLog`), the kill switch, the progress bar (redrawn at most ten times a second), and the
within-task checkpoint.

**The within-task checkpoint** (`checkpoints/within_task/last.ckpt`) is written by time, not by
epoch: once `trainer.checkpoint_every_minutes` (default 10) have passed since the task started or
since the last write, or every `trainer.checkpoint_every_n_steps` optimizer steps when that is
set, whichever comes first (`CheckpointSchedule`); a kill loses at most that much training. A
checkpoint due at the last batch of an epoch is written after the epoch's end hooks, at the
position "epoch done, next epoch not started"; none is written at the task's last step. It
holds the module's and optimizer's (and scheduler's) states, the position (step, epoch, batches
done in the epoch), the random-number states, the algorithm's `extra_cl_state()`, the loss terms
recorded since the last write and the config's digest. The order of an epoch is a function of
the loader's seed and the epoch (`clarena.cl_datasets.loader`), so a resume inside an epoch
replays the same batches: it draws the epoch's batches again, skips the ones already trained and
restores the random-number states just before the next step, where the uninterrupted run stood.

**When the lean loop runs** (`fit_loop: auto`, the default): one process on one device in full
precision, without validation, with callbacks it knows (`ModelCheckpoint`, the NaN guard, the
progress bar) and Trainer options it implements; a `ModelCheckpoint` callback is refused with
the keys that replaced it; `lean_refusal(cfg)` names what keeps a config on
Lightning's Trainer (DDP, mixed precision, gradient clipping, your own callbacks, ...).
`fit_loop: lightning` always uses the Trainer; `fit_loop: lean` refuses a config the lean loop
cannot run.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from omegaconf import DictConfig

from clarena.pipelines import checkpoint as ckpt
from clarena.pipelines.checkpoint import CheckpointError
from clarena.pipelines.errors import ConfigError
from clarena.pipelines.progress_bar import LeanProgressBar

FORMAT = "clarena.within_task"
"""The `format` entry of the lean loop's within-task checkpoint."""

FORMAT_VERSION = 1
"""Version of that checkpoint's layout."""

LOOPS = ("auto", "lean", "lightning")
"""The values of the config's `fit_loop`."""

_TRAINER_TARGET = "lightning.pytorch.Trainer"
CHECKPOINT_TARGET = "lightning.pytorch.callbacks.ModelCheckpoint"
"""The callback the within-task checkpoint of `trainer.checkpoint_every_*` replaced."""
CHECKPOINT_KEYS = ("checkpoint_every_minutes", "checkpoint_every_n_steps")
"""The trainer keys of the within-task checkpoint's interval (none of Lightning's Trainer)."""
_GUARD_TARGET = "clarena.pipelines.callbacks.NonFiniteLossGuard"
_IGNORED = {
    "_target_",
    "max_epochs",
    "max_steps",
    "log_every_n_steps",
    "enable_progress_bar",
    "enable_model_summary",
    "default_root_dir",
    "num_sanity_val_steps",
    *CHECKPOINT_KEYS,
}
"""Trainer options the lean loop implements, or that have no effect on it."""
_REQUIRED: dict[str, tuple[Any, ...]] = {
    "accelerator": ("cpu", "gpu", "cuda", "auto"),
    "devices": (1, "1", "auto"),
    "strategy": ("auto", None),
    "num_nodes": (1,),
    "precision": ("32-true", "32", 32, None),
    "limit_val_batches": (0, 0.0),
    "deterministic": (False, None),
    "enable_checkpointing": (True, None),
    "logger": (True, None),
}
"""Trainer options the lean loop accepts only with these values."""


def lean_refusal(cfg: DictConfig) -> str | None:
    """Why the lean loop cannot run `cfg` (None when it can)."""
    trainer = cfg.get("trainer")
    if not isinstance(trainer, DictConfig) or trainer.get("_target_") != _TRAINER_TARGET:
        return f"trainer._target_ is not {_TRAINER_TARGET}"
    for key in map(str, trainer):
        value = trainer.get(key)
        if key in _REQUIRED:
            if value not in _REQUIRED[key]:
                return f"trainer.{key}={value!r}"
        elif key not in _IGNORED:
            return f"trainer.{key} is set"
    if trainer.get("devices", 1) == "auto" and trainer.get("accelerator", "auto") != "cpu":
        return "trainer.devices=auto on an accelerator (Lightning may start DDP)"
    from clarena.pipelines.config import callback_nodes

    for name, node in callback_nodes(cfg).items():
        target = node.get("_target_")
        if target != _GUARD_TARGET:
            return f"callbacks.{name} is {target} (only Lightning's Trainer runs callbacks)"
    return None


def use_lean(cfg: DictConfig) -> bool:
    """Whether `clarena train` runs `cfg` on the lean loop (see the module docstring).

    Raises:
        ConfigError: for a `ModelCheckpoint` callback (replaced by `trainer.checkpoint_every_*`),
            a bad checkpoint interval, for `fit_loop: lean` on a config the lean loop cannot run,
            or an unknown `fit_loop`.
    """
    from clarena.pipelines.config import callback_nodes

    for name, node in callback_nodes(cfg).items():
        if node.get("_target_") == CHECKPOINT_TARGET:
            raise ConfigError(
                f"callbacks.{name}: the within-task checkpoint is no longer a ModelCheckpoint "
                "callback; remove it and set trainer.checkpoint_every_minutes (default 10) or "
                "trainer.checkpoint_every_n_steps"
            )
    checkpoint_interval(cfg)  # a wrong interval
    choice = cfg.get("fit_loop", "auto")
    if choice not in LOOPS:
        raise ConfigError(f"fit_loop={choice!r}: use one of {', '.join(LOOPS)}")
    if choice == "lightning":
        return False
    refusal = lean_refusal(cfg)
    if refusal is not None and choice == "lean":
        raise ConfigError(
            f"fit_loop=lean cannot run this config ({refusal}): use fit_loop=auto, which runs it "
            "on Lightning's Trainer"
        )
    return refusal is None


def checkpoint_interval(cfg: DictConfig) -> tuple[float | None, int | None]:
    """`(minutes, steps)` of the within-task checkpoint: `trainer.checkpoint_every_minutes` and
    `trainer.checkpoint_every_n_steps` (None: not by that measure; both None: no checkpoint).

    Raises:
        ConfigError: for a value that is not a positive number (or null).
    """
    trainer = cfg.get("trainer") or {}
    minutes, steps = (trainer.get(key, None) for key in CHECKPOINT_KEYS)
    for key, value, kind in zip(CHECKPOINT_KEYS, (minutes, steps), (float, int), strict=True):
        number = isinstance(value, (int, float) if kind is float else int)
        if value is not None and (isinstance(value, bool) or not number or not value > 0):
            raise ConfigError(
                f"trainer.{key}={value!r}: use a positive "
                f"{'number' if kind is float else 'integer'}, or null for no checkpoint "
                f"{'by time' if kind is float else 'by steps'}"
            )
    return (None if minutes is None else float(minutes)), (None if steps is None else int(steps))


class CheckpointSchedule:
    """When the within-task checkpoint is due: `minutes` after the last write (or the start), or at
    every multiple of `steps` optimizer steps, whichever comes first.

    Args:
        minutes: Time between two checkpoints (None: not by time).
        steps: Optimizer steps between two checkpoints (None: not by steps).
        clock: Seconds of a monotonic clock (tests pass a fake one).
    """

    def __init__(
        self,
        minutes: float | None,
        steps: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = None if minutes is None else 60.0 * minutes
        self.steps = steps
        self.clock = clock
        self._last = 0.0

    @property
    def enabled(self) -> bool:
        """Whether any checkpoint is written."""
        return self.seconds is not None or self.steps is not None

    def restart(self) -> None:
        """Count the time from now (the start of a fit, or a write)."""
        if self.seconds is not None:
            self._last = self.clock()

    def due(self, global_step: int) -> bool:
        """Whether a checkpoint is due after optimizer step `global_step`."""
        if self.steps is not None and global_step % self.steps == 0:
            return True
        return self.seconds is not None and self.clock() - self._last >= self.seconds


def guard_interval(cfg: DictConfig) -> int:
    """`check_every_n_steps` of a configured `NonFiniteLossGuard` (0: none configured)."""
    from clarena.pipelines.config import callback_nodes

    for node in callback_nodes(cfg).values():
        if node.get("_target_") == _GUARD_TARGET:
            return int(node.get("check_every_n_steps", 1))
    return 0


def resolve_device(accelerator: str) -> torch.device:
    """The device of `trainer.accelerator` (`auto`: the first CUDA GPU if there is one)."""
    if accelerator in {"gpu", "cuda"} or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("cpu")


NVML_CHECK_ENV = "PYTORCH_NVML_BASED_CUDA_CHECK"
"""Set to 1 by `import lightning`: `torch.cuda.is_available()` then asks NVML first."""


@contextmanager
def plain_cuda_check() -> Iterator[None]:
    """Run without Lightning's `PYTORCH_NVML_BASED_CUDA_CHECK=1`.

    With it, every `torch.cuda.is_available()` before CUDA is initialised loads the NVML library
    again (nothing is cached until then), and Adam calls it in every `step`: 0.1-0.25 ms a step
    on a machine without a GPU, as much as a small model's whole step. Lightning sets it so that
    a check does not initialise CUDA before it forks processes; the lean loop runs in one process
    and forks none, so it lifts the setting while it runs and puts it back afterwards.
    """
    saved = os.environ.pop(NVML_CHECK_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[NVML_CHECK_ENV] = saved


def is_lean_checkpoint(checkpoint: Any) -> bool:
    """Whether a loaded within-task checkpoint was written by the lean loop."""
    return isinstance(checkpoint, dict) and checkpoint.get("format") == FORMAT


class _StepOptimizer:
    """What `LightningModule.optimizer_step` is handed: `step(closure)` runs the closure, then the
    module's `on_before_optimizer_step`, then the optimizer's step (Lightning's order)."""

    def __init__(self, optimizer: torch.optim.Optimizer, module: Any) -> None:
        self.optimizer, self.module = optimizer, module

    def step(self, closure: Callable[[], Any] | None = None) -> None:
        if closure is not None:
            with torch.enable_grad():
                closure()
        self.module.on_before_optimizer_step(self.optimizer)
        self.optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)


class LeanTrainer:
    """Fits and tests one task like a Lightning `Trainer` would (`fit`, `test`), without one.

    The algorithm sees it as its `trainer` while it runs: the attributes algorithms and
    `TrainTermsLog` read (`global_step`, `current_epoch`, `log_every_n_steps`, `loggers`,
    `optimizers`, `num_training_batches`, `strategy.root_device`, ...) are here.

    Args:
        task_id: The task trained.
        max_epochs: Epoch budget (-1: none; None: 1000 when `max_steps` is -1, as Lightning).
        max_steps: Step budget (-1: none).
        device: Where the model and the data live.
        loggers: Experiment loggers (Lightning's; shared by the tasks of a run).
        callbacks: Objects with Lightning callback hooks for the test (`RecordPredictions`).
        log_every_n_steps: Interval of the loss terms' check and write.
        checkpoint_dir: Folder of the within-task checkpoint (None: no checkpoint).
        checkpoint_every: When the within-task checkpoint is due (None: never).
        config_digest: Digest of the run's config, stored in the checkpoint.
        progress_bar: Draw the progress bar.
        num_tasks: The run's number of tasks (for the bar's label).
        kill_step: Testing aid: SIGKILL this process after this optimizer step.
        guard_every: A configured NaN guard's `check_every_n_steps` (0: none; the loss terms are
            checked every `log_every_n_steps` steps whatever this is).
    """

    global_rank = local_rank = node_rank = 0
    world_size = num_devices = 1
    is_global_zero = True
    barebones = False
    sanity_checking = False

    def __init__(
        self,
        task_id: int,
        max_epochs: int | None,
        max_steps: int,
        device: torch.device,
        loggers: list[Any],
        callbacks: list[Any] | None = None,
        log_every_n_steps: int = 50,
        checkpoint_dir: Path | None = None,
        checkpoint_every: CheckpointSchedule | None = None,
        config_digest: str = "",
        progress_bar: bool = False,
        num_tasks: int | None = None,
        kill_step: int | None = None,
        guard_every: int = 0,
    ) -> None:
        if max_epochs is None:
            max_epochs = 1000 if max_steps == -1 else -1
        self.task_id = task_id
        self.max_epochs, self.max_steps = max_epochs, max_steps
        self.strategy = SimpleNamespace(root_device=device)
        self.loggers = list(loggers)
        self.callbacks = list(callbacks or [])
        self.log_every_n_steps = max(1, int(log_every_n_steps))
        self.checkpoint_dir = checkpoint_dir
        self.schedule = checkpoint_every if checkpoint_every and checkpoint_every.enabled else None
        self.config_digest = config_digest
        self.bar = (
            LeanProgressBar(task_id, num_tasks, max_epochs, max_steps) if progress_bar else None
        )
        self.kill_step = kill_step
        self.guard: Any = None
        if guard_every:
            from clarena.pipelines.callbacks import NonFiniteLossGuard

            self.guard = NonFiniteLossGuard(guard_every)
        self._resume_rng: dict[str, Any] | None = None
        self.global_step = 0
        self.current_epoch = 0
        self.num_training_batches: float = math.inf
        self.optimizers: list[torch.optim.Optimizer] = []
        self.lr_scheduler: Any = None
        self.logged_metrics: dict[str, Any] = {}
        self.callback_metrics: dict[str, Any] = {}
        self.progress_bar_metrics: dict[str, Any] = {}
        self.training = self.testing = False
        self._side: dict[str, list[torch.Tensor]] = {}

    @property
    def root_device(self) -> torch.device:
        """The device of the task."""
        return self.strategy.root_device

    @property
    def logger(self) -> Any:
        """The first logger (Lightning's `trainer.logger`)."""
        return self.loggers[0] if self.loggers else None

    # ------------------------------------------------------------------ values outside the loss
    def record_step_value(self, name: str, value: torch.Tensor) -> None:
        """Keep a per-step value (A-GEM's projection flag) on the device; its mean over the
        logging interval is written with the loss terms' (Lightning's `self.log` in a Trainer)."""
        self._side.setdefault(name, []).append(value.detach())

    def _write_side(self) -> None:
        if not self._side:
            return
        names = sorted(self._side)
        means = torch.stack([torch.stack(self._side[n]).float().mean() for n in names]).tolist()
        self._side = {}
        metrics = dict(zip(names, means))
        for logger in self.loggers:
            logger.log_metrics({**metrics, "epoch": self.current_epoch}, step=self.global_step - 1)
            logger.save()
        self.logged_metrics.update(metrics)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        model: Any,
        datamodule: Any = None,
        ckpt_path: Path | str | None = None,
        weights_only: bool = True,
    ) -> None:
        """Train `model` on `datamodule`'s training loader (from `ckpt_path` when given)."""
        module, device = model, self.root_device
        if datamodule is not None:
            datamodule.trainer = self
        module.trainer = self
        self.training = True
        module.to(device)
        module.train()
        terms_log = getattr(module, "_train_terms", None)
        try:
            with plain_cuda_check():
                self._fit(module, datamodule, Path(ckpt_path) if ckpt_path else None, terms_log)
        except BaseException:
            if terms_log is not None:
                terms_log.on_exception(self, module, RuntimeError("fit failed"))
            for logger in self.loggers:
                logger.finalize("failed")
            raise
        finally:
            self.training = False
            if self.bar is not None:
                self.bar.stop()
        for logger in self.loggers:
            logger.finalize("success")

    def _configure_optimizers(self, module: Any) -> None:
        configured = module.configure_optimizers()
        scheduler = None
        if isinstance(configured, dict):
            optimizer, scheduler = configured["optimizer"], configured.get("lr_scheduler")
        else:
            optimizer = configured
        if isinstance(scheduler, dict) or isinstance(
            scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau
        ):
            raise ConfigError(
                "the lean loop steps plain epoch-interval LR schedulers only: set "
                "fit_loop=lightning for a scheduler config or ReduceLROnPlateau"
            )
        self.optimizers, self.lr_scheduler = [optimizer], scheduler

    def _log_hyperparameters(self, module: Any, datamodule: Any) -> None:
        hparams = dict(module.hparams_initial)
        if datamodule is not None and getattr(datamodule, "_log_hyperparams", False):
            hparams.update(datamodule.hparams_initial)
        for logger in self.loggers:
            logger.log_hyperparams(hparams)
            logger.log_graph(module)
            logger.save()

    def _fit(self, module: Any, datamodule: Any, ckpt_path: Path | None, terms_log: Any) -> None:
        datamodule.setup("fit")
        module.setup("fit")
        loader = datamodule.train_dataloader()
        self.num_training_batches = float(len(loader))
        self._configure_optimizers(module)
        optimizer = self.optimizers[0]
        stepper = _StepOptimizer(optimizer, module)
        self._log_hyperparameters(module, datamodule)
        module.on_fit_start()
        if terms_log is not None:
            terms_log.on_train_start(self, module)
        module.on_train_start()
        skip = self._restore(ckpt_path, module, optimizer, terms_log) if ckpt_path else 0
        if self.bar is not None:
            self.bar.start()
        if self.schedule is not None:
            self.schedule.restart()
        while not self._done():
            self._epoch(module, loader, stepper, terms_log, skip)
            skip = 0
        if terms_log is not None:
            terms_log.on_train_end(self, module)
        self._write_side()
        module.on_train_end()
        module.on_fit_end()
        module.teardown("fit")
        datamodule.teardown("fit")

    def _done(self) -> bool:
        if 0 < self.max_steps <= self.global_step:
            return True
        return 0 <= self.max_epochs <= self.current_epoch

    def _epoch(self, module: Any, loader: Any, stepper: _StepOptimizer, terms_log: Any, skip: int):
        """One epoch (its first `skip` batches were trained before a resume)."""
        epoch = self.current_epoch
        loader.sampler.set_epoch(epoch)
        if terms_log is not None:
            terms_log.on_train_epoch_start(self, module)
        module.on_train_epoch_start()
        total = len(loader)
        if self.bar is not None:
            self.bar.epoch_start(epoch, total)
        every, done = self.log_every_n_steps, 0
        for batch_idx, batch in enumerate(loader):
            if batch_idx < skip:
                continue
            if self._resume_rng is not None:  # where the interrupted run stood
                ckpt.restore_rng(self._resume_rng)
                self._resume_rng = None
            if module.on_train_batch_start(batch, batch_idx) == -1:
                break
            outputs = self._step(module, stepper, batch, batch_idx)
            self.global_step += 1
            done = batch_idx + 1
            module.on_train_batch_end(outputs, batch, batch_idx)
            if self.guard is not None:
                self.guard.on_train_batch_end(self, module, outputs, batch, batch_idx)
            if self._side and self.global_step % every == 0:
                self._write_side()
            if self.bar is not None:
                loss = self.progress_bar_metrics.get("train/loss")
                self.bar.update(done, loss, force=done == total)
            if self.kill_step is not None and self.global_step >= self.kill_step:
                from clarena.pipelines.callbacks import kill_now

                kill_now()
            if done != total and not self._done() and self._due():
                self._save(module, epoch, done)
            if self._done():
                break
        complete = done == total
        if complete and self.lr_scheduler is not None:
            self.lr_scheduler.step()
        if terms_log is not None:
            terms_log.on_train_epoch_end(self, module)
        self._write_side()
        module.on_train_epoch_end()
        self.current_epoch += 1
        if not self._done() and self._due():  # due at the epoch's last batch: written here
            self._save(module, self.current_epoch, 0)

    def _due(self) -> bool:
        return self.schedule is not None and self.schedule.due(self.global_step)

    def _step(self, module: Any, stepper: _StepOptimizer, batch: Any, batch_idx: int) -> Any:
        """One optimizer step of automatic optimisation, as Lightning orders it."""
        result: dict[str, Any] = {}

        def closure() -> Any:
            loss = module.training_step(batch, batch_idx)
            result["loss"] = loss
            module.optimizer_zero_grad(self.current_epoch, batch_idx, stepper.optimizer)
            module.on_before_backward(loss)
            module.backward(loss)
            module.on_after_backward()
            return loss

        module.optimizer_step(self.current_epoch, batch_idx, stepper, closure)
        return result.get("loss")

    # ------------------------------------------------------------------ checkpoint
    def _save(self, module: Any, epoch: int, batches_done: int) -> None:
        """Write the within-task checkpoint: the loop is after `batches_done` batches of `epoch`."""
        if self.checkpoint_dir is None:
            return
        terms_log = getattr(module, "_train_terms", None)
        extra = getattr(module, "extra_cl_state", None)
        state = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task_id": self.task_id,
            "config_digest": self.config_digest,
            "global_step": self.global_step,
            "epoch": epoch,
            "batches_done": batches_done,
            "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
            "optimizer": self.optimizers[0].state_dict(),
            "lr_scheduler": None if self.lr_scheduler is None else self.lr_scheduler.state_dict(),
            "rng": ckpt.capture_rng(),
            "extra_cl_state": extra() if extra is not None else {},
            "train_terms": terms_log.loop_state() if terms_log is not None else None,
            "side": {k: [v.cpu() for v in vs] for k, vs in self._side.items()},
        }
        for logger in self.loggers:  # the logs on disk reach the checkpoint's step
            logger.save()
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        ckpt.atomic_torch_save(state, self.checkpoint_dir / WITHIN_TASK_FILE)
        if self.schedule is not None:
            self.schedule.restart()

    def _restore(self, path: Path, module: Any, optimizer: Any, terms_log: Any) -> int:
        """Load the within-task checkpoint `path`; return the batches of its epoch to skip."""
        state = ckpt.safe_load(path)
        if not is_lean_checkpoint(state) or state.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{path} was not written by this clarena's lean loop; resume with "
                "fit_loop=lightning in the run's config.yaml, or delete it to redo the task"
            )
        if int(state["task_id"]) != self.task_id:
            raise CheckpointError(
                f"{path} belongs to task {state['task_id']}, not task {self.task_id}; delete "
                "checkpoints/within_task/ and resume again"
            )
        device = self.root_device
        module.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if self.lr_scheduler is not None and state["lr_scheduler"] is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if state["extra_cl_state"] and hasattr(module, "load_extra_cl_state"):
            module.load_extra_cl_state(state["extra_cl_state"])
        if terms_log is not None and state["train_terms"] is not None:
            terms_log.load_loop_state(state["train_terms"], device)
        self._side = {k: [v.to(device) for v in vs] for k, vs in state["side"].items()}
        self.global_step = int(state["global_step"])
        self.current_epoch = int(state["epoch"])
        self._resume_rng = state["rng"]  # restored just before the next step
        return int(state["batches_done"])

    # ------------------------------------------------------------------ test
    def test(self, model: Any, datamodule: Any = None, verbose: bool = False) -> list[Any]:
        """Test `model` on every test loader of `datamodule`, as Lightning's test loop does."""
        module = model
        if datamodule is not None:
            datamodule.trainer = self
        module.trainer = self
        module.to(self.root_device)
        was_training = module.training
        self.testing = True
        try:
            with torch.inference_mode(), plain_cuda_check():
                module.eval()
                datamodule.setup("test")
                module.setup("test")
                loaders = datamodule.test_dataloader()
                loaders = loaders if isinstance(loaders, list | tuple) else [loaders]
                module.on_test_start()
                for callback in self.callbacks:
                    callback.on_test_epoch_start(self, module)
                module.on_test_epoch_start()
                for idx, loader in enumerate(loaders):
                    for batch_idx, batch in enumerate(loader):
                        out = module.test_step(batch, batch_idx, dataloader_idx=idx)
                        for callback in self.callbacks:
                            callback.on_test_batch_end(self, module, out, batch, batch_idx, idx)
                for callback in self.callbacks:
                    callback.on_test_epoch_end(self, module)
                module.on_test_epoch_end()
                module.on_test_end()
                module.teardown("test")
                datamodule.teardown("test")
        finally:
            self.testing = False
            module.train(was_training)
        for logger in self.loggers:
            logger.save()
        return []


WITHIN_TASK_FILE = "last.ckpt"
"""The within-task checkpoint's file name (the same for both loops)."""

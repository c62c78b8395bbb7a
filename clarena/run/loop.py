"""THE loop: one task of one algorithm trained and tested, on Lightning Fabric.

Fabric runs what `clarena.run.loop_settings.LoopSettings` names (devices, DDP processes,
precision, backward, gradient clipping); this loop runs the same `CLAlgorithm` (a LightningModule)
by calling the module's hooks in the order Lightning's Trainer calls them, without a Trainer's
per-step cost (about 40 hook calls through its profiler and callback dispatch):

    setup("fit") (datamodule, module), on_fit_start, on_train_start
    every epoch e: the sampler's set_epoch(e), on_train_epoch_start
        every batch: on_train_batch_start,
                     optimizer_step(closure = training_step, optimizer_zero_grad, backward;
                                    on_before_optimizer_step and clipping between the closure
                                    and the step) every `accumulate_grad_batches` batches,
                     on_train_batch_end
        epoch-interval LR schedulers (after a complete epoch), on_train_epoch_end
    on_train_end, on_fit_end, teardown("fit")

and tests with `setup("test")`, `on_test_epoch_start`, `test_step` per batch of every test loader
(under `torch.inference_mode`), `on_test_epoch_end`, `teardown("test")`. The module is set up with
`fabric.setup_module` (moved to its device, wrapped in DDP under several processes), so
`training_step` runs through DDP's forward and Fabric's autocast; `fabric.backward` scales the
loss under `16-mixed`. The loaders are the datamodule's own: they shard themselves across ranks.

The pipeline's duties are called directly: the loss-term record (`TrainTermsLog`), the kill
switch, the progress bar (rank zero, redrawn at most ten times a second), and the within-task
checkpoint (`clarena.run_folder.checkpoint`: written when `CheckpointSchedule` says, by time or
steps; it holds the position, random states and optimizer state, so a resume replays the
interrupted epoch's remaining batches exactly).

**Your own callbacks** are objects in the config's `callbacks` group, handed to Fabric
(`Fabric(callbacks=...)`) and called with `fabric.call` at these hooks (any subset):

    on_loop_fit_start(loop, module)
    on_loop_step_end(loop, module, loss, batch, batch_idx)     after every optimizer step
    on_loop_epoch_end(loop, module)
    on_loop_fit_end(loop, module)
    on_loop_test_end(loop, module, predictions)                {task: {"preds", "targets", ...}}

`loop.global_step`, `loop.current_epoch`, `loop.task_id`, `loop.global_rank`, `loop.fabric` and
`loop.loggers` tell where the run is. The names differ from the LightningModule's own hooks, which
Fabric also lists among its callbacks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from clarena.core.errors import ConfigError
from clarena.run.loop_settings import CheckpointSchedule, LoopSettings
from clarena.run.progress_bar import ProgressBar
from clarena.run.unused_sentinel import add_unused_sentinel
from clarena.run_folder import checkpoint as ckpt

HOOKS = (
    "on_loop_fit_start",
    "on_loop_step_end",
    "on_loop_epoch_end",
    "on_loop_fit_end",
    "on_loop_test_end",
)
"""The hooks the loop calls on the run's callbacks (`fabric.call`)."""


def make_fabric(
    settings: LoopSettings, callbacks: list[Any] | None = None, loggers: list[Any] | None = None
) -> Any:
    """The run's Fabric with its callbacks and experiment loggers, launched: under DDP the other
    ranks start here (or were started by SLURM) and the process group is up when it returns."""
    from lightning.fabric import Fabric

    fabric = Fabric(
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=settings.fabric_strategy(),
        precision=settings.precision,  # type: ignore[arg-type]
        callbacks=list(callbacks or []),
        loggers=list(loggers or []),
    )
    fabric.launch()
    return fabric


NVML_CHECK_ENV = "PYTORCH_NVML_BASED_CUDA_CHECK"
"""Set to 1 by `import lightning`: `torch.cuda.is_available()` then asks NVML first."""


@contextmanager
def plain_cuda_check() -> Iterator[None]:
    """Run without Lightning's `PYTORCH_NVML_BASED_CUDA_CHECK=1`.

    With it, every `torch.cuda.is_available()` before CUDA is initialised loads the NVML library
    again (nothing is cached until then), and Adam calls it in every `step`: 0.1-0.25 ms a step
    on a machine without a GPU, as much as a small model's whole step. Lightning sets it so that
    a check does not initialise CUDA before it starts processes; the loop runs after Fabric's
    launch, so it lifts the setting while it runs and puts it back afterwards.
    """
    saved = os.environ.pop(NVML_CHECK_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[NVML_CHECK_ENV] = saved


class _StepOptimizer:
    """What `LightningModule.optimizer_step` is handed: `step(closure)` runs the closure, then the
    module's `on_before_optimizer_step` and the clipping, then the optimizer's step."""

    def __init__(self, optimizer: Any, module: Any, clip: Callable[[], None]) -> None:
        self.optimizer, self.module, self.clip = optimizer, module, clip

    def step(self, closure: Callable[[], Any] | None = None) -> None:
        if closure is not None:
            with torch.enable_grad():
                closure()
        self.module.on_before_optimizer_step(self.optimizer)
        self.clip()
        self.optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)


class Loop:
    """Fits and tests one task (`fit`, `test`) on the run's Fabric.

    The algorithm sees it as its `trainer` while it runs: the attributes algorithms and
    `TrainTermsLog` read (`global_step`, `current_epoch`, `log_every_n_steps`, `loggers`,
    `optimizers`, `num_training_batches`, `strategy.root_device`, ...) are here.

    Args:
        fabric: The run's launched Fabric (`make_fabric`).
        task_id: The task trained.
        settings: The config's `trainer` node, built.
        loggers: Experiment loggers (None: the Fabric's, shared by the tasks of a run; none on
            ranks other than 0).
        checkpoint_dir: Folder of the within-task checkpoint (None: no checkpoint).
        schedule: When the within-task checkpoint is due (None: from `settings`).
        config_digest: Digest of the run's config, stored in the checkpoint.
        num_tasks: The run's number of tasks (for the bar's label).
        kill_step: Testing aid: SIGKILL this process after this optimizer step.
        callbacks: The run's callbacks (those handed to `make_fabric`).
    """

    barebones = False
    sanity_checking = False

    def __init__(
        self,
        fabric: Any,
        task_id: int,
        settings: LoopSettings,
        loggers: list[Any] | None = None,
        checkpoint_dir: Path | None = None,
        schedule: CheckpointSchedule | None = None,
        config_digest: str = "",
        num_tasks: int | None = None,
        kill_step: int | None = None,
        callbacks: list[Any] | None = None,
    ) -> None:
        self.fabric, self.task_id, self.settings = fabric, task_id, settings
        self.max_epochs, self.max_steps = int(settings.max_epochs or -1), settings.max_steps
        self.global_rank, self.world_size = fabric.global_rank, fabric.world_size
        self.local_rank, self.node_rank = fabric.local_rank, fabric.node_rank
        self.is_global_zero = fabric.is_global_zero
        self.num_devices = self.world_size
        self.strategy = SimpleNamespace(root_device=fabric.device)
        self.loggers = list(fabric.loggers if loggers is None else loggers)
        self.log_every_n_steps = max(1, int(settings.log_every_n_steps))
        self.accumulate = int(settings.accumulate_grad_batches)
        self.checkpoint_dir = checkpoint_dir
        if schedule is None:
            schedule = CheckpointSchedule(
                settings.checkpoint_every_minutes, settings.checkpoint_every_n_steps
            )
        self.schedule = schedule if checkpoint_dir is not None and schedule.enabled else None
        self.config_digest = config_digest
        bar = settings.enable_progress_bar and self.is_global_zero
        self.bar = ProgressBar(task_id, num_tasks, self.max_epochs, self.max_steps) if bar else None
        self.kill_step = kill_step
        self.calls_back = any(callable(getattr(c, h, None)) for c in callbacks or () for h in HOOKS)
        self.resume_rng: dict[str, Any] | None = None
        self.global_step = 0
        self.current_epoch = 0
        self.num_training_batches: float = math.inf
        self.optimizers: list[torch.optim.Optimizer] = []
        self.lr_scheduler: Any = None
        self.logged_metrics: dict[str, Any] = {}
        self.callback_metrics: dict[str, Any] = {}
        self.progress_bar_metrics: dict[str, Any] = {}
        self.training = self.testing = False
        self.side: dict[str, list[torch.Tensor]] = {}
        self._wrapped: Any = None
        self._training_step: Any = None

    @property
    def root_device(self) -> torch.device:
        """The device of this process."""
        return self.strategy.root_device

    @property
    def logger(self) -> Any:
        """The first logger (Lightning's `trainer.logger`)."""
        return self.loggers[0] if self.loggers else None

    def call(self, hook: str, *args: Any) -> None:
        """Call `hook` of the run's callbacks (`fabric.call`), when any has hooks of the loop."""
        if self.calls_back:
            self.fabric.call(hook, self, *args)

    # ------------------------------------------------------------------ values outside the loss
    def record_step_value(self, name: str, value: torch.Tensor) -> None:
        """Keep a per-step value (A-GEM's projection flag) on the device; its mean over the
        logging interval is written with the loss terms'."""
        self.side.setdefault(name, []).append(value.detach())

    def _write_side(self) -> None:
        if not self.side:
            return
        names = sorted(self.side)
        means = torch.stack([torch.stack(self.side[n]).float().mean() for n in names]).tolist()
        self.side = {}
        metrics = dict(zip(names, means, strict=True))
        for logger in self.loggers:
            logger.log_metrics({**metrics, "epoch": self.current_epoch}, step=self.global_step - 1)
            logger.save()
        self.logged_metrics.update(metrics)

    # ------------------------------------------------------------------ fit
    def fit(self, model: Any, datamodule: Any = None, ckpt_path: Path | str | None = None) -> None:
        """Train `model` on `datamodule`'s training loader (from `ckpt_path` when given)."""
        module = model
        datamodule.trainer = self
        module.trainer = self
        self.training = True
        if self.fabric.world_size > 1 and "find_unused" in str(self.settings.fabric_strategy()):
            add_unused_sentinel(module)  # DDP then never warns of finding no unused parameter
        self._wrapped = self.fabric.setup_module(module)
        module._fabric = None  # the module's `trainer` stays this loop, not Fabric's shim
        # through DDP's forward (and so its gradient sync) when Fabric wrapped the module in DDP
        self._training_step = self._wrapped.training_step
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
            self._wrapped = self._training_step = None
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
        if isinstance(scheduler, dict | torch.optim.lr_scheduler.ReduceLROnPlateau):
            raise ConfigError(
                "the loop steps plain epoch-interval LR schedulers only (a scheduler config dict "
                "or ReduceLROnPlateau is not one): use a scheduler such as StepLR"
            )
        self.optimizers, self.lr_scheduler = [optimizer], scheduler

    def _log_hyperparameters(self, module: Any, datamodule: Any) -> None:
        hparams = dict(module.hparams_initial)
        if getattr(datamodule, "_log_hyperparams", False):
            hparams.update(datamodule.hparams_initial)
        for logger in self.loggers:
            logger.log_hyperparams(hparams)
            logger.log_graph(module)
            logger.save()

    def _clip(self) -> None:
        value = self.settings.gradient_clip_val
        if value is None or value <= 0:
            return
        optimizer, wrapped = self.optimizers[0], self._wrapped
        if self.settings.gradient_clip_algorithm == "value":
            self.fabric.clip_gradients(wrapped, optimizer, clip_val=value)
        else:
            self.fabric.clip_gradients(wrapped, optimizer, max_norm=value)

    def _fit(self, module: Any, datamodule: Any, ckpt_path: Path | None, terms_log: Any) -> None:
        datamodule.setup("fit")
        module.setup("fit")
        loader = datamodule.train_dataloader()
        self.num_training_batches = float(len(loader))
        self._configure_optimizers(module)
        self.optimizers = [self.fabric.setup_optimizers(self.optimizers[0])]
        stepper = _StepOptimizer(self.optimizers[0], module, self._clip)
        self._log_hyperparameters(module, datamodule)
        module.on_fit_start()
        if terms_log is not None:
            terms_log.on_train_start(self, module)
        module.on_train_start()
        self.call("on_loop_fit_start", module)
        skip = ckpt.load_within_task(ckpt_path, self, module) if ckpt_path else 0
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
        self.call("on_loop_fit_end", module)
        module.teardown("fit")
        datamodule.teardown("fit")

    def _done(self) -> bool:
        if 0 < self.max_steps <= self.global_step:
            return True
        return 0 <= self.max_epochs <= self.current_epoch

    def _needs_moving(self, loader: Any) -> bool:
        """Whether `loader`'s batches must be moved to this process's device (the in-memory
        loader's are already there; a `DataLoader`'s are on the CPU)."""
        return getattr(loader, "device", None) != self.root_device

    def _due(self) -> bool:
        return self.schedule is not None and self.schedule.due(self.global_step)

    def _epoch(self, module: Any, loader: Any, stepper: _StepOptimizer, terms_log: Any, skip: int):
        """One epoch (its first `skip` batches were trained before a resume)."""
        epoch = self.current_epoch
        set_epoch = getattr(getattr(loader, "sampler", None), "set_epoch", None)
        if callable(set_epoch):  # the epoch's order is a function of the seed and the epoch
            set_epoch(epoch)
        move = self._needs_moving(loader)
        if terms_log is not None:
            terms_log.on_train_epoch_start(self, module)
        module.on_train_epoch_start()
        total = len(loader)
        if self.bar is not None:  # a step budget that ends in this epoch ends its bar full
            left = (self.max_steps - self.global_step) * self.accumulate + skip
            self.bar.epoch_start(epoch, min(total, left) if self.max_steps > 0 else total)
        every, done = self.log_every_n_steps, 0
        for batch_idx, batch in enumerate(loader):
            if batch_idx < skip:
                continue
            if self.resume_rng is not None:  # where the interrupted run stood
                ckpt.restore_rng(self.resume_rng)
                self.resume_rng = None
            if move:
                batch = self.fabric.to_device(batch)
            if module.on_train_batch_start(batch, batch_idx) == -1:
                break
            done = batch_idx + 1
            stepping = done % self.accumulate == 0 or done == total
            outputs = self._step(module, stepper, batch, batch_idx, stepping)
            if stepping:
                self.global_step += 1
            module.on_train_batch_end(outputs, batch, batch_idx)
            if not stepping:
                continue
            self.call("on_loop_step_end", module, outputs, batch, batch_idx)
            if self.side and self.global_step % every == 0:
                self._write_side()
            if self.bar is not None:
                loss = self.progress_bar_metrics.get("train/loss")
                self.bar.update(done, loss, force=done == total or self._done())
            if self.kill_step is not None and self.global_step >= self.kill_step:
                from clarena.run.callbacks import kill_now

                kill_now()
            if done != total and not self._done() and self._due():
                ckpt.save_within_task(self, module, epoch, done)
            if self._done():
                break
        if done == total and self.lr_scheduler is not None:
            self.lr_scheduler.step()
        if terms_log is not None:
            terms_log.on_train_epoch_end(self, module)
        self._write_side()
        module.on_train_epoch_end()
        self.call("on_loop_epoch_end", module)
        self.current_epoch += 1
        if not self._done() and self._due():  # due at the epoch's last batch: written here
            ckpt.save_within_task(self, module, self.current_epoch, 0)

    def _step(
        self, module: Any, stepper: _StepOptimizer, batch: Any, batch_idx: int, stepping: bool
    ) -> Any:
        """One batch of automatic optimisation, as Lightning orders it; the optimizer steps when
        `stepping` (the gradients of the batches before it since the last step add up)."""
        result: dict[str, Any] = {}
        fabric, wrapped, training_step = self.fabric, self._wrapped, self._training_step
        first = batch_idx % self.accumulate == 0

        def closure() -> Any:
            with fabric.autocast():  # DDP's forward under several processes: it syncs the grads
                loss = training_step(batch, batch_idx)
            result["loss"] = loss
            if first:
                module.optimizer_zero_grad(self.current_epoch, batch_idx, stepper.optimizer)
            module.on_before_backward(loss)
            fabric.backward(loss / self.accumulate if self.accumulate > 1 else loss, model=wrapped)
            module.on_after_backward()
            return loss

        if stepping:
            module.optimizer_step(self.current_epoch, batch_idx, stepper, closure)
        else:
            with fabric.no_backward_sync(wrapped), torch.enable_grad():
                closure()
        return result.get("loss")

    # ------------------------------------------------------------------ test
    def test(self, model: Any, datamodule: Any = None, recorders: list[Any] | None = None) -> None:
        """Test `model` on every test loader of `datamodule`, as Lightning's test loop does;
        `recorders` (`RecordPredictions`) receive what `test_step` returns."""
        module, fabric = model, self.fabric
        recorders = list(recorders or [])
        datamodule.trainer = self
        module.trainer = self
        module.to(self.root_device)
        if self.world_size > 1:  # every rank tests with rank zero's buffers (the saved model's)
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer.data, src=0)
        was_training = module.training
        self.testing = True
        try:
            with torch.inference_mode(), fabric.autocast(), plain_cuda_check():
                module.eval()
                datamodule.setup("test")
                module.setup("test")
                loaders = datamodule.test_dataloader()
                loaders = loaders if isinstance(loaders, list | tuple) else [loaders]
                module.on_test_start()
                for recorder in recorders:
                    recorder.on_test_epoch_start(self, module)
                module.on_test_epoch_start()
                for idx, loader in enumerate(loaders):
                    move = self._needs_moving(loader)
                    limit = self.settings.limit_test_batches
                    for batch_idx, batch in enumerate(loader):
                        if limit is not None and batch_idx >= limit:
                            break
                        batch = fabric.to_device(batch) if move else batch
                        out = module.test_step(batch, batch_idx, dataloader_idx=idx)
                        for recorder in recorders:
                            recorder.on_test_batch_end(self, module, out, batch, batch_idx, idx)
                for recorder in recorders:
                    recorder.on_test_epoch_end(self, module)
                module.on_test_epoch_end()
                module.on_test_end()
                module.teardown("test")
                datamodule.teardown("test")
        finally:
            self.testing = False
            module.train(was_training)
        for recorder in recorders:
            self.call("on_loop_test_end", module, recorder.outputs)
        for logger in self.loggers:
            logger.save()

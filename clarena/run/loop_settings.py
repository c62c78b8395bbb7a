"""The settings of the training loop (the config's `trainer` node), checked before a run starts.

`trainer:` builds a `LoopSettings` (`_target_: clarena.run.loop_settings.LoopSettings`), so
its keys are checked against this signature like every other component's. Lightning Fabric runs
what they name (`clarena.run.loop`): the device, the processes (`devices=N` means N
processes on every accelerator: DDP, gloo on CPUs and NCCL on GPUs; `num_nodes` machines, SLURM
included), the precision (`32-true`, `bf16-mixed`, `16-mixed`), gradient clipping and accumulation.

`check_loop_config` refuses, in one line naming what replaced it, what the loop no longer takes:
the `fit_loop` switch, Lightning's `Trainer` as `trainer._target_`, Trainer options, and a
`ModelCheckpoint` callback (the within-task checkpoint is `checkpoint_every_minutes` /
`checkpoint_every_n_steps`; `CheckpointSchedule` says when it is due). Run folders written before
the change are translated when they are read (`clarena.run.saved_config`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clarena.core.errors import ConfigError

SETTINGS_TARGET = "clarena.run.loop_settings.LoopSettings"
"""The `_target_` of the config's `trainer` node."""

TRAINER_TARGETS = ("lightning.pytorch.Trainer", "lightning.pytorch.trainer.trainer.Trainer")
"""Lightning's Trainer, which `trainer:` named before the loop moved onto Fabric."""

CHECKPOINT_TARGET = "lightning.pytorch.callbacks.ModelCheckpoint"
"""The callback `checkpoint_every_minutes` / `checkpoint_every_n_steps` replaced."""

REPLACED: dict[str, str] = {
    "fit_loop": "every run uses the one loop on Lightning Fabric; remove fit_loop",
    "enable_checkpointing": "the within-task checkpoint is trainer.checkpoint_every_minutes / "
    "trainer.checkpoint_every_n_steps (both null: none)",
    "limit_val_batches": "the loop runs no validation; remove it",
    "num_sanity_val_steps": "the loop runs no validation; remove it",
    "enable_model_summary": "the loop prints no model summary; remove it",
    "default_root_dir": "everything is written under output_dir; remove it",
    "deterministic": "set torch.use_deterministic_algorithms in your own code; remove it",
    "logger": "experiment loggers are the logger group (logger=csv, tensorboard, ...)",
    "callbacks": "callbacks are the callbacks group (callbacks.<name>._target_=...)",
}
"""Options of the former loops (and Lightning's Trainer) → what replaced them."""

PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")
"""The precisions the loop runs (Fabric's names)."""


@dataclass
class LoopSettings:
    """How each task is trained (a fresh budget per task).

    Attributes:
        accelerator: `cpu`, `gpu` (`cuda`) or `auto` (a GPU when there is one).
        devices: Processes on this machine (one device each): N > 1 runs DDP; `auto`: every GPU
            (one process on a CPU).
        num_nodes: Machines (each with `devices` processes).
        strategy: Fabric's strategy; `auto` is DDP when there are several processes (with
            `find_unused_parameters`, since the heads of other tasks get no gradient).
        precision: `32-true`, `bf16-mixed` or `16-mixed` (autocast; 16-mixed scales the loss).
        max_epochs: Epochs per task (-1: none; null: 1000 when `max_steps` is -1).
        max_steps: Optimizer steps per task (-1: none).
        log_every_n_steps: Interval of the loss terms' NaN check and write to the loggers.
        gradient_clip_val: Clip the gradients to this norm (or value); null: no clipping.
        gradient_clip_algorithm: `norm` or `value`.
        accumulate_grad_batches: Batches whose gradients add up to one optimizer step.
        enable_progress_bar: Draw the progress bar (on rank zero).
        limit_test_batches: Test on the first this many batches of each test task only (null:
            all; for quick trials: the accuracies are then of those batches).
        checkpoint_every_minutes: Write the within-task checkpoint once this many minutes of
            training passed since the task started or since the last write (null: not by time).
        checkpoint_every_n_steps: Also write it every this many optimizer steps (null: not by
            steps); whichever comes first.
    """

    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str | int = "32-true"
    max_epochs: int | None = None
    max_steps: int = -1
    log_every_n_steps: int = 50
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = 1
    enable_progress_bar: bool = True
    limit_test_batches: int | None = None
    checkpoint_every_minutes: float | None = 10
    checkpoint_every_n_steps: int | None = None

    def __post_init__(self) -> None:
        self.precision = str(self.precision)
        if self.max_epochs is None:
            self.max_epochs = 1000 if self.max_steps == -1 else -1
        check_values(vars(self))

    def fabric_strategy(self) -> str:
        """Fabric's strategy: DDP whenever there are several processes."""
        several = self.num_nodes > 1 or (self.devices not in (1, "1", "auto"))
        if self.strategy == "auto" and several:
            return "ddp_find_unused_parameters_true"
        return self.strategy


def check_values(trainer: Any) -> None:
    """Refuse a precision, clipping algorithm, accumulation or checkpoint interval the loop does
    not run (`trainer`: the config's node, or the settings' fields)."""
    precision = str(trainer.get("precision", "32-true"))
    if precision not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    clip = trainer.get("gradient_clip_algorithm", "norm")
    if clip not in ("norm", "value"):
        raise ConfigError(f"trainer.gradient_clip_algorithm={clip!r}: use norm or value")
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches={accumulate!r}: use 1 (no accumulation) or more"
        )
    minutes = trainer.get("checkpoint_every_minutes", None)
    steps = trainer.get("checkpoint_every_n_steps", None)
    for key, value, integer in (
        ("checkpoint_every_minutes", minutes, False),
        ("checkpoint_every_n_steps", steps, True),
    ):
        kinds = int if integer else (int, float)
        number = isinstance(value, kinds) and not isinstance(value, bool)
        if value is None or (number and value > 0):
            continue
        raise ConfigError(
            f"trainer.{key}={value!r}: use a positive {'integer' if integer else 'number'}, or "
            f"null for no checkpoint {'by steps' if integer else 'by time'}"
        )


def check_loop_config(cfg: Any) -> None:
    """Refuse what the loop no longer takes, in one line naming what replaced it.

    Raises:
        ConfigError: for `fit_loop`, Lightning's Trainer as `trainer._target_`, a Trainer
            option, a `ModelCheckpoint` callback, or a value the loop does not run.
    """
    if "fit_loop" in cfg:
        raise ConfigError(f"fit_loop={cfg.get('fit_loop')!r}: {REPLACED['fit_loop']}")
    trainer = cfg.get("trainer") or {}
    if trainer.get("_target_") in TRAINER_TARGETS:
        raise ConfigError(
            f"trainer._target_={trainer.get('_target_')}: the loop runs on Lightning Fabric now; "
            f"set trainer._target_={SETTINGS_TARGET} (or pick trainer=default, cpu, gpu, ddp)"
        )
    for key in map(str, trainer):
        if key in REPLACED:
            raise ConfigError(f"trainer.{key}: {REPLACED[key]}")
    check_values(trainer)
    for name, node in (cfg.get("callbacks") or {}).items():
        if hasattr(node, "get") and node.get("_target_") == CHECKPOINT_TARGET:
            raise ConfigError(
                f"callbacks.{name}: the within-task checkpoint is no longer a ModelCheckpoint "
                "callback; remove it and set trainer.checkpoint_every_minutes (default 10) or "
                "trainer.checkpoint_every_n_steps"
            )


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

"""Run-folder configs written by an earlier clarena, read in today's terms.

A run folder's `config.yaml` is never rewritten (its digest is in every checkpoint), so a folder
written before a config key changed is translated in memory when it is read
(`clarena.pipelines.run_folder.load_run_config`): it evaluates and resumes as it began.

- `trainer:` built Lightning's `Trainer`; it now builds the loop's `LoopSettings` (the loop runs
  on Lightning Fabric). The Trainer's options the loop has keep their values; the others had no
  effect on a clarena run (no validation, no model summary, the run folder as `default_root_dir`)
  and are dropped. The `fit_loop` switch is dropped: there is one loop.
- The within-task checkpoint was a `lightning.pytorch.callbacks.ModelCheckpoint` callback (at
  every epoch end, or every `every_n_train_steps` steps); it is now the trainer's
  `checkpoint_every_minutes` / `checkpoint_every_n_steps`. The callback is dropped; its step
  interval becomes `checkpoint_every_n_steps`, its epoch interval the default time interval. A
  config without one had no within-task checkpoint, and keeps none.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from clarena.pipelines.loop_settings import (
    CHECKPOINT_TARGET,
    SETTINGS_TARGET,
    TRAINER_TARGETS,
    LoopSettings,
)

DEFAULT_MINUTES = 10
"""`trainer.checkpoint_every_minutes` of the shipped configs."""

_FIELDS = {field.name for field in dataclasses.fields(LoopSettings)}


def upgrade(config: dict[str, Any]) -> dict[str, Any]:
    """`config` (a run folder's, as plain data) in today's keys; a current config is unchanged."""
    config.pop("fit_loop", None)
    trainer = config.get("trainer")
    if not isinstance(trainer, dict) or trainer.get("_target_") not in TRAINER_TARGETS:
        return config
    settings = {k: v for k, v in trainer.items() if k in _FIELDS}
    settings["_target_"] = SETTINGS_TARGET
    settings["checkpoint_every_minutes"] = None
    settings["checkpoint_every_n_steps"] = None
    callbacks = config.get("callbacks") or {}
    for name, node in list(callbacks.items()):
        if isinstance(node, dict) and node.get("_target_") == CHECKPOINT_TARGET:
            del callbacks[name]
            steps = node.get("every_n_train_steps")
            settings["checkpoint_every_minutes"] = DEFAULT_MINUTES
            settings["checkpoint_every_n_steps"] = int(steps) if steps else None
    config["trainer"] = settings
    return config

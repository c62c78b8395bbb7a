"""Run-folder configs written by an earlier clarena, read in today's terms.

A run folder's `config.yaml` is never rewritten (its digest is in every checkpoint), so a folder
written before a config key changed is translated in memory when it is read
(`clarena.pipelines.run_folder.load_run_config`): it evaluates and resumes as it began.

- The within-task checkpoint was a `lightning.pytorch.callbacks.ModelCheckpoint` callback (at
  every epoch end, or every `every_n_train_steps` steps); it is now the trainer's
  `checkpoint_every_minutes` / `checkpoint_every_n_steps`. The callback is dropped; its step
  interval becomes `checkpoint_every_n_steps`, its epoch interval the default time interval.
"""

from __future__ import annotations

from typing import Any

CHECKPOINT_TARGET = "lightning.pytorch.callbacks.ModelCheckpoint"
"""The callback `trainer.checkpoint_every_*` replaced."""

DEFAULT_MINUTES = 10
"""`trainer.checkpoint_every_minutes` of the shipped configs."""


def upgrade(config: dict[str, Any]) -> dict[str, Any]:
    """`config` (a run folder's, as plain data) in today's keys; a current config is unchanged."""
    callbacks = config.get("callbacks")
    trainer = config.get("trainer")
    if not isinstance(callbacks, dict) or not isinstance(trainer, dict):
        return config
    for name, node in list(callbacks.items()):
        if not isinstance(node, dict) or node.get("_target_") != CHECKPOINT_TARGET:
            continue
        del callbacks[name]
        steps = node.get("every_n_train_steps")
        trainer.setdefault("checkpoint_every_minutes", DEFAULT_MINUTES)
        trainer.setdefault("checkpoint_every_n_steps", int(steps) if steps else None)
    return config

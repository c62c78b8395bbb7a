"""A run folder's `config.yaml` read back (`load_run_config`): as received data, in today's terms.

Reading it runs no code: the checks of `clarena.run_folder.received` come first (no symbolic link
in the folder, no alias bomb, no resolver, every `_target_` on the allow-list, every logger and
callback path inside the folder). Then the config is translated into today's keys: a run folder's
`config.yaml` is never rewritten (its digest is in every checkpoint), so a folder written before a
config key changed is translated in memory when it is read, and evaluates and resumes as it began.

- Modules that moved keep working: a `_target_` under the former `clarena.pipelines` package
  names its class's module of today (`MOVED`) before the allow-list is checked.

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
from pathlib import Path
from typing import Any

from clarena.core.errors import ConfigError
from clarena.core.files import describe_os_error
from clarena.run.loop_settings import (
    CHECKPOINT_TARGET,
    SETTINGS_TARGET,
    TRAINER_TARGETS,
    LoopSettings,
)
from clarena.run_folder import received
from clarena.run_folder.folder import CONFIG_FILE

DEFAULT_MINUTES = 10
"""`trainer.checkpoint_every_minutes` of the shipped configs."""

_FIELDS = {field.name for field in dataclasses.fields(LoopSettings)}

MOVED = {
    "clarena.pipelines.loop_settings.": "clarena.run.loop_settings.",
    "clarena.pipelines.loggers.": "clarena.run.loggers.",
    "clarena.pipelines.callbacks.": "clarena.run.callbacks.",
}
"""Where the classes a run config may name moved (the former package → today's module)."""


def _moved(value: Any) -> Any:
    """`value` with every `_target_` of a moved module renamed (plain data in, plain data out)."""
    if isinstance(value, dict):
        out = {key: _moved(item) for key, item in value.items()}
        target = out.get("_target_")
        for old, new in MOVED.items():
            if isinstance(target, str) and target.startswith(old):
                out["_target_"] = new + target[len(old) :]
        return out
    if isinstance(value, list):
        return [_moved(item) for item in value]
    return value


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


def load_run_config(run_dir: Path, trust: bool = False) -> Any:
    """Read `run_dir/config.yaml` as a DictConfig rooted at `run_dir`, checked for safety
    (`clarena.run_folder.received`): no symbolic link in the folder, no alias bomb, no resolver,
    references resolved once, then (unless `trust`) every `_target_` on the allow-list and every
    path of a logger or callback inside the folder.

    Raises:
        ConfigError: The file is missing, not YAML, not a mapping, or fails one of the checks.
    """
    import yaml
    from omegaconf import OmegaConf

    run_dir = Path(run_dir).absolute()
    path = run_dir / CONFIG_FILE
    received.check_no_symlinks(run_dir)
    try:
        data = received.read_yaml(path)
    except OSError as exc:
        raise ConfigError(describe_os_error(exc, "cannot read")) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{path} is not valid YAML ({first}); restore it from a copy, or start a new run"
        ) from None
    if not isinstance(data, dict) or not data:
        kind = "empty" if not data else f"a {type(data).__name__}, not a mapping"
        raise ConfigError(
            f"{path} is {kind}, so it is not a clarena run config; restore it, or start a new run"
        )
    received.refuse_resolvers(data, path)
    data["output_dir"] = str(run_dir)
    plain = _moved(received.resolve_received(data, path))
    if not trust:
        received.check_targets(plain, path)
        received.check_paths_inside(plain, run_dir, path)
    return OmegaConf.create(upgrade(plain))  # a folder of an earlier clarena, in today's keys

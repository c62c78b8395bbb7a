"""The run description: a checked config resolved once into what every part of a run reads.

`clarena train` walks a config through five stages, each reading what the one before made:

1. **compose**: Hydra composes the YAML files and overrides (`clarena.run.config.compose_config`);
   a run folder's config is read back as received data instead
   (`clarena.run.saved_config.load_run_config`);
2. **check**: one-line errors before any folder exists (`clarena.run.config.validate_config`);
3. **describe**: `RunSpec.of(cfg, run_dir)` resolves the config once into this frozen, typed
   description; no later part reads the config itself;
4. **build**: the components (`clarena.run.components.build_components(spec)`), the loop's
   Fabric, loggers and callbacks;
5. **run tasks and write**: `clarena.run.task_loop.run_experiment(spec)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from clarena.core.errors import ConfigError
from clarena.run.loop_settings import SETTINGS_TARGET, LoopSettings


def to_plain(cfg: DictConfig | ListConfig) -> Any:
    """The resolved config as plain dicts and lists (safe in checkpoints and JSON)."""
    return OmegaConf.to_container(cfg, resolve=True)


def logger_nodes(cfg: DictConfig) -> dict[str, DictConfig]:
    """The logger configs of a run by name (`logger: {csv: {...}, ...}`; empty for none)."""
    return _named_targets(cfg.get("logger"))


def callback_nodes(cfg: DictConfig) -> dict[str, DictConfig]:
    """The callback configs of a run by name (`callbacks: {name: {...}}`; empty for none)."""
    return _named_targets(cfg.get("callbacks"))


def _named_targets(node: Any) -> dict[str, DictConfig]:
    if not node:
        return {}
    return {str(k): v for k, v in node.items() if isinstance(v, DictConfig) and "_target_" in v}


def _frozen(node: Any) -> DictConfig:
    """A read-only copy of `node` (an empty node for none); `instantiate` copies it to build."""
    copy = OmegaConf.create(node if node is not None else {})
    OmegaConf.set_readonly(copy, True)
    return copy


def _read_only(value: Any) -> Any:
    """`value` (plain dicts, lists, scalars) with every dict read-only and every list a tuple."""
    if isinstance(value, dict):
        return MappingProxyType({key: _read_only(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_read_only(item) for item in value)
    return value


def _writable(value: Any) -> Any:
    """The plain dicts and lists `_read_only` froze, as new objects."""
    if isinstance(value, Mapping):
        return {key: _writable(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_writable(item) for item in value]
    return value


def build_settings(trainer: DictConfig) -> LoopSettings:
    """The loop's settings a `trainer` node describes (built directly: no other target runs)."""
    target = trainer.get("_target_")
    if target != SETTINGS_TARGET:
        raise ConfigError(
            f"trainer._target_={target!r} is not the loop's settings: use {SETTINGS_TARGET} "
            "(trainer=default, cpu, gpu, ddp)"
        )
    fields = OmegaConf.to_container(trainer, resolve=True)
    assert isinstance(fields, dict)
    fields.pop("_target_")
    try:
        return LoopSettings(**{str(k): v for k, v in fields.items()})
    except TypeError as exc:  # a key the settings do not have
        keys = ", ".join(f.name for f in dataclasses.fields(LoopSettings))
        raise ConfigError(f"trainer: {exc}; the keys are {keys}") from None


@dataclass(frozen=True)
class RunSpec:
    """One run, described once from its checked config (see the module's stages).

    The component nodes are read-only configs (Hydra's `instantiate` builds from a copy); every
    interpolation is resolved. `config` is the whole resolved config as plain data: what
    `config.yaml`, the checkpoints and `metrics.json` record.
    """

    run_dir: Path
    """The run folder (`output_dir`)."""
    seed: int
    scenario: str
    """`TIL`, `CIL`, `DIL` or `DataIL`."""
    settings: LoopSettings
    """How each task is trained (the `trainer` node)."""
    cl_dataset: DictConfig
    backbone: DictConfig
    optimizer: DictConfig
    """A partial optimizer (`_partial_: true`): the algorithm gives it the parameters."""
    cl_algorithm: DictConfig
    update: DictConfig
    """The deployed model and reference ensemble of a model update (empty for none)."""
    loggers: Mapping[str, DictConfig] = field(default_factory=dict)
    callbacks: Mapping[str, DictConfig] = field(default_factory=dict)
    flush_denormal: bool = False
    """Flush subnormal floats to zero during the run (`torch.set_flush_denormal`)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The resolved config, read-only at every depth (`plain_config` gives a writable copy)."""

    @classmethod
    def of(cls, cfg: DictConfig, run_dir: Path | str | None = None) -> RunSpec:
        """Describe the run of `cfg` (already checked) in `run_dir` (default `cfg.output_dir`)."""
        plain = {  # Hydra's own node (of a config composed with it) is not the run's
            str(key): to_plain(cfg[key]) if OmegaConf.is_config(cfg[key]) else cfg[key]
            for key in cfg
            if key != "hydra"
        }
        resolved = OmegaConf.create(plain)
        return cls(
            run_dir=Path(run_dir if run_dir is not None else resolved.output_dir).absolute(),
            seed=int(resolved.seed),
            scenario=str(resolved.scenario),
            settings=build_settings(resolved.trainer),
            cl_dataset=_frozen(resolved.cl_dataset),
            backbone=_frozen(resolved.backbone),
            optimizer=_frozen(resolved.optimizer),
            cl_algorithm=_frozen(resolved.cl_algorithm),
            update=_frozen(resolved.get("update")),
            loggers=MappingProxyType({k: _frozen(v) for k, v in logger_nodes(resolved).items()}),
            callbacks=MappingProxyType(
                {k: _frozen(v) for k, v in callback_nodes(resolved).items()}
            ),
            flush_denormal=bool(resolved.get("flush_denormal", False)),
            config=_read_only(plain),
        )

    def plain_config(self) -> dict[str, Any]:
        """The resolved config as a new plain dict (to write, or to change a copy of)."""
        return _writable(self.config)

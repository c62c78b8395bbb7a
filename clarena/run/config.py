"""Composing and validating the config of a run, with one-line errors.

`compose_config` runs Hydra's compose API over the shipped configs (`pkg://clarena.configs`) plus
the user's config folders, and turns Hydra's multi-line composition errors into a `ConfigError`
naming the cause and the fix. `validate_config` then checks what composition cannot: the top-level
keys, the scenario, the type and name of every argument given to a `_target_` against the signature
of the class it builds, and the components' own checks (built once, reading no data), so that a
run stops before it creates a folder or touches any data; it returns the run's description
(`clarena.run.spec.RunSpec`).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from clarena.core.errors import ConfigError, closest
from clarena.core.scenarios import SCENARIOS
from clarena.run.spec import RunSpec
from clarena.run_folder.received import import_target

CONFIG_MODULE = "clarena.configs"
"""The package holding the shipped configs."""

PRIMARY_CONFIG = "train"
"""The primary config of `clarena train` (`clarena/configs/train.yaml`)."""

#: The component groups every run needs, each a node with a `_target_`.
REQUIRED_GROUPS = ("cl_dataset", "backbone", "cl_algorithm", "optimizer", "trainer")

#: Arguments the pipeline passes itself when it instantiates a group (a config must not set them).
PASSED_BY_PIPELINE = {
    "backbone": ("input_shape",),
    "cl_algorithm": ("backbone", "heads", "optimizer", "scenario"),
    "optimizer": ("params",),
}


def searchpath_override(config_dirs: Sequence[str]) -> list[str]:
    """The override that puts the user's config folders on Hydra's search path."""
    if not config_dirs:
        return []
    from pathlib import Path

    entries = ",".join(f"'file://{Path(d).expanduser().absolute()}'" for d in config_dirs)
    return [f"hydra.searchpath=[{entries}]"]


def _composition_error(exc: Exception, overrides: Sequence[str]) -> ConfigError:
    """Translate one of Hydra's composition exceptions into a one-line `ConfigError`."""
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(exc)
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        missing = exc.missing_cfg_file
        group, _, option = missing.rpartition("/")
        if group:
            options = list(exc.options or [])
            listed = ", ".join(options) if options else "none found"
            return ConfigError(
                f"unknown {group} {option!r}{closest(option, options)}: choose one of {listed} "
                f"(`clarena list` shows them), or add {missing}.yaml to your config folder"
            )
        return ConfigError(f"config {missing!r} not found; check the name and --config-dir")
    if isinstance(exc, OverrideParseException):
        bad = next((o for o in overrides if "=" not in o.lstrip("~+")), None)
        what = f" in {bad!r}" if bad else ""
        return ConfigError(
            f"cannot parse the overrides{what}: write them as key=value "
            "(quote values with spaces or commas: key='a,b')"
        )
    if text.startswith("Could not override '") or text.startswith("Could not append to config"):
        key = text.split("'")[1]
        from clarena.run.loop_settings import REPLACED

        if key == "fit_loop" or (key.startswith("trainer.") and key[8:] in REPLACED):
            return ConfigError(f"{key}: {REPLACED[key.removeprefix('trainer.')]}")
        return ConfigError(
            f"unknown config key {key!r}: check its spelling against `clarena train --cfg job`, "
            f"or add a new key with +{key}=..."
        )
    if text.startswith("Ambiguous value for argument"):
        arg = text.split("'")[1]
        return ConfigError(
            f"{arg!r} lists several values: add -m (--multirun) to sweep over them, or write a "
            "list as key=[a,b]"
        )
    if "Could not delete" in text or "Key '" in text:
        first = text.splitlines()[0]
        return ConfigError(f"{first}; check the key names with `clarena train --cfg job`")
    first = " ".join(line.strip() for line in text.splitlines()[:2] if line.strip())
    return ConfigError(f"the config does not compose: {first}")


def compose_config(overrides: Sequence[str], return_hydra_config: bool = False) -> DictConfig:
    """Compose `train.yaml` with `overrides` (Hydra's compose API).

    Args:
        overrides: Command-line style overrides (`key=value`, `group=option`, `+key=value`,
            `hydra.searchpath=[...]`).
        return_hydra_config: Keep the `hydra` node (launcher, run and sweep folders).

    Raises:
        ConfigError: With a one-line message when the overrides do not compose.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            return compose(PRIMARY_CONFIG, list(overrides), return_hydra_config=return_hydra_config)
    except ConfigError:
        raise
    except Exception as exc:  # Hydra's composition errors are many types; all are bad input
        raise _composition_error(exc, overrides) from exc
    finally:
        GlobalHydra.instance().clear()


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether `value` fits a simple annotation; `True` for annotations too complex to judge."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_accepts(arg, value) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return True


def _signature(func: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], dict[str, Any]]:
    try:
        params = dict(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return {}, {}
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: check names only
        hints = {}
    return params, hints


def _type_hints(target: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], dict[str, Any]]:
    """The parameters a target accepts and their annotations.

    For a class whose `__init__` forwards `**kwargs` to its parent (`LwF(*args, **kwargs)`), the
    parents' parameters are collected too, up to the first `__init__` without `**kwargs`.
    """
    if not inspect.isclass(target):
        return _signature(target)
    params: dict[str, inspect.Parameter] = {}
    hints: dict[str, Any] = {}
    for klass in target.__mro__:
        if "__init__" not in vars(klass):
            continue
        own, own_hints = _signature(klass.__init__)  # type: ignore[misc]
        own.pop("self", None)
        forwards = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in own.values())
        for name, param in own.items():
            if param.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
                params.setdefault(name, param)
                if name in own_hints:
                    hints.setdefault(name, own_hints[name])
        if not forwards or klass is object:
            if forwards:
                params["**kwargs"] = inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)
            break
    else:
        params["**kwargs"] = inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)
    return params, hints


def check_target_node(node: DictConfig, where: str, passed: Sequence[str] = ()) -> None:
    """Check the arguments of one `_target_` node against the signature of its target.

    Raises:
        ConfigError: For an argument the target does not take, or a value of the wrong type.
    """
    target = import_target(str(node["_target_"]), where)
    params, hints = _type_hints(target)
    if not params:
        return
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key in node:
        key = str(key)
        if key.startswith("_") and key.endswith("_"):
            continue
        if key in passed:
            raise ConfigError(
                f"{where}.{key} is set by the pipeline itself; remove it from the config"
            )
        if key not in params:
            if takes_kwargs:
                continue
            names = [n for n in params if n not in passed and not n.startswith("*")]
            raise ConfigError(
                f"{where} ({target.__name__}) takes no argument {key!r}{closest(key, names)}: "
                f"remove it or use one of {', '.join(names)}"
            )
        try:
            value = OmegaConf.to_container(node, resolve=True)[key]  # type: ignore[index,call-overload]
        except Exception:  # an interpolation only Hydra's runtime can resolve: checked later
            continue
        annotation = hints.get(key, params[key].annotation)
        if isinstance(value, (dict, list)) or isinstance(annotation, str):
            continue
        if not _accepts(annotation, value):
            expected = (
                annotation.__name__
                if isinstance(annotation, type)
                else str(annotation).replace("typing.", "")
            )
            raise ConfigError(
                f"wrong type for {where}.{key}: got {value!r} ({type(value).__name__}), "
                f"{target.__name__} expects {expected}; fix the value: {where}.{key}=<{expected}>"
            )


def _check_top_level(cfg: DictConfig) -> None:
    scenario = cfg.get("scenario")
    if scenario not in SCENARIOS:
        raise ConfigError(
            f"unknown scenario {scenario!r}{closest(str(scenario), SCENARIOS)}: set scenario= "
            "one of " + ", ".join(SCENARIOS)
        )
    seed = cfg.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"wrong type for seed: got {seed!r}, expected an integer; e.g. seed=1")
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed={seed} is outside 0..{MAX_SEED} (numpy's range); e.g. seed=1")
    flush = cfg.get("flush_denormal", False)
    if not isinstance(flush, bool):
        raise ConfigError(
            f"wrong type for flush_denormal: got {flush!r}, expected true or false; e.g. "
            "flush_denormal=false"
        )
    _check_budget(cfg)
    from clarena.run.loop_settings import check_loop_config

    check_loop_config(cfg)  # what the loop no longer takes, naming what replaced it
    for key in ("output_dir", "experiment_name"):
        if not isinstance(cfg.get(key), str) or not cfg.get(key):
            raise ConfigError(f"{key} must be a non-empty string, got {cfg.get(key)!r}")
    data_root = cfg.get("data_root")
    if data_root is not None and not isinstance(data_root, str):
        raise ConfigError(f"data_root must be a folder path or null, got {data_root!r}")
    for group in REQUIRED_GROUPS:
        node = cfg.get(group)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(
                f"the config has no {group} with a _target_: pick one with {group}=<name> "
                "(`clarena list` shows them)"
            )


def _check_resolves(cfg: DictConfig) -> None:
    """Refuse a config whose interpolations name a key that does not exist (`seed=${nope}`) or
    do not parse; the `hydra` node and resolvers only Hydra's runtime knows are left alone."""
    from omegaconf.errors import GrammarParseError, InterpolationKeyError

    for key in cfg:
        if key == "hydra":
            continue
        try:
            value = cfg[key]
            if isinstance(value, (DictConfig, ListConfig)):
                OmegaConf.to_container(value, resolve=True)
        except (InterpolationKeyError, GrammarParseError) as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(
                f"{key!s} does not resolve ({first}); fix the interpolation ${{...}}: it must name "
                "an existing key, e.g. seed=1 or seed=${another.key}"
            ) from None
        except Exception:  # a resolver only Hydra's runtime provides (${hydra:...}): later
            continue


MAX_SEED = 2**32 - 1
"""The largest seed numpy's generators accept."""


def _check_budget(cfg: DictConfig) -> None:
    """Refuse a training budget that trains nothing or that Lightning would reject mid-run."""
    trainer = cfg.get("trainer")
    if not isinstance(trainer, DictConfig):
        return
    max_steps, max_epochs = trainer.get("max_steps", -1), trainer.get("max_epochs", None)
    for key, value in (("max_steps", max_steps), ("max_epochs", max_epochs)):
        if isinstance(value, bool) or not isinstance(value, int):
            continue  # a wrong type is reported by the Trainer's signature check
        if value < -1:
            raise ConfigError(
                f"trainer.{key}={value!r} is not a budget: use a positive integer, or -1 for none"
            )
        if value == 0:
            raise ConfigError(
                f"trainer.{key}=0 trains nothing: use a positive number (or -1 for no limit)"
            )
    if max_steps == -1 and max_epochs == -1:
        raise ConfigError(
            "trainer.max_steps=-1 and trainer.max_epochs=-1 never end a task: set one of them"
        )
    num_tasks = cfg.get("cl_dataset", {}).get("num_tasks", None)
    if num_tasks is not None and (
        isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks <= 0
    ):
        raise ConfigError(f"cl_dataset.num_tasks={num_tasks!r}: use a positive integer")
    devices = trainer.get("devices", "auto")
    no_device = isinstance(devices, ListConfig) and len(devices) == 0
    if isinstance(devices, int) and not isinstance(devices, bool):
        no_device = devices == 0 or devices < -1
    if no_device:
        raise ConfigError(
            f"trainer.devices={devices!r} runs on no device: use a positive number of devices "
            "(processes), -1 for all, or auto"
        )
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in {"gpu", "cuda"}:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={accelerator} but this machine has no CUDA GPU: use "
                "trainer=cpu (or trainer.accelerator=auto)"
            )


def _check_optimizer(node: DictConfig) -> None:
    """Build the optimizer once over a stand-in parameter, so that its own argument checks
    (`lr=-1`, `lr=nan`, `lr=abc`, betas out of range) refuse the config before a folder exists."""
    import torch
    from hydra.utils import instantiate

    from clarena.core.errors import one_line

    params = [torch.nn.Parameter(torch.zeros(1))]
    try:
        if node.get("_partial_", False):
            instantiate(node)(params)
        else:
            instantiate(node, params=params)
    except Exception as exc:  # ValueError / TypeError from the optimizer's own checks
        settings = ", ".join(
            f"{k!s}={v!r}" for k, v in node.items() if not str(k).startswith("_") and k != "params"
        )
        raise ConfigError(
            f"optimizer {node._target_} refuses its arguments ({one_line(exc)}; given {settings}):"
            " fix the value, e.g. optimizer.lr=0.001"
        ) from None


def check_scenario_support(cfg: DictConfig) -> None:
    """Refuse a scenario the algorithm or the dataset declares it does not support."""
    scenario = cfg.scenario
    for group in ("cl_algorithm", "cl_dataset"):
        target = import_target(str(cfg[group]._target_), group)
        supported = getattr(target, "supported_scenarios", None)
        if supported is not None and scenario not in supported:
            raise ConfigError(
                f"{group} {target.__name__} does not support scenario={scenario}: set scenario= "
                f"one of {', '.join(supported)}, or choose another {group}"
            )


_VALIDATED: dict[str, bool] = {}
"""`validation_key` → whether the components were built, of the configs this process validated."""


def validation_key(cfg: DictConfig) -> str:
    """A digest of the config as composed (interpolations unresolved), without `output_dir` and
    Hydra's own node: the same for `clarena train`'s pre-flight check and the job it launches."""
    import hashlib
    import json

    plain = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(plain, dict)
    kept = {k: v for k, v in plain.items() if k not in {"output_dir", "hydra"}}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def validate_config(cfg: DictConfig, build: bool = True) -> RunSpec:
    """Check a composed config before anything runs and return the run's description.

    The checks run once per process: a config already validated (by `clarena train`'s pre-flight
    check, before Hydra launched the job) is only described again (its `output_dir` may differ).

    Args:
        cfg: The composed config.
        build: Also construct the components once, reading no data file: their constructors
            validate their arguments (an algorithm refusing a scenario, a bad `data_root`, ...),
            so those refusals come before any folder is created.

    Raises:
        ConfigError: One line naming the cause and the fix.
    """
    key = validation_key(cfg)
    if _VALIDATED.get(key, False) or (key in _VALIDATED and not build):
        return RunSpec.of(cfg)
    _check_resolves(cfg)
    _check_top_level(cfg)
    for group in REQUIRED_GROUPS:
        check_target_node(cfg[group], group, PASSED_BY_PIPELINE.get(group, ()))
    check_scenario_support(cfg)
    _check_optimizer(cfg.optimizer)
    spec = RunSpec.of(cfg)
    if build:
        from clarena.run.components import build_components

        build_components(spec, load_data=False)
    for name, node in spec.callbacks.items():
        check_target_node(node, f"callbacks.{name}")
    for name, node in spec.loggers.items():
        import_target(str(node._target_), f"logger.{name}")
        if name in LOGGER_PACKAGES:
            _require_logger_package(name)
    _VALIDATED[key] = build
    return spec


#: The package each optional logger needs (Lightning imports them lazily, on first use).
LOGGER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def _require_logger_package(name: str) -> None:
    import importlib.util

    package = LOGGER_PACKAGES[name]
    if name == "tensorboard" and importlib.util.find_spec("tensorboardX") is not None:
        return
    if importlib.util.find_spec(package) is None:
        raise ConfigError(
            f"logger={name} needs the package {package!r}: pip install 'clarena[loggers]' "
            "(or choose logger=csv)"
        )

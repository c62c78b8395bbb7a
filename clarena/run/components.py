"""The wiring of a run's components, defined once: dataset → backbone → heads → optimizer factory →
algorithm, from the run's description (`clarena.run.spec.RunSpec`). `clarena train` (through
`run_experiment`), its pre-flight check (`validate_config`), `clarena eval` and the sweep
summaries all build a run with `build_components`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clarena.core.errors import ConfigError, one_line
from clarena.run.spec import RunSpec


@dataclass
class Components:
    """What a run is made of: the dataset and the algorithm (with its backbone and heads)."""

    datamodule: Any
    algorithm: Any


def build_components(spec: RunSpec, load_data: bool = True) -> Components:
    """Instantiate the dataset, backbone, heads, optimizer factory and algorithm of `spec`.

    With `load_data` the dataset's files are read here, so a missing dataset stops the run before
    any training; without, nothing is read (the pre-flight check of `clarena train`).

    Raises:
        ConfigError: when a constructor refuses its arguments (an algorithm refusing a scenario, a
            bad `data_root`, ...): one line naming the config group and the cause.
    """
    from hydra.utils import instantiate

    from clarena.heads import make_heads
    from clarena.run.deployed import update_options

    stage = "cl_dataset"
    try:
        datamodule = instantiate(spec.cl_dataset)
    except Exception as exc:  # every constructor refusal is bad input
        raise _refused(stage, exc) from exc
    if load_data:
        datamodule.prepare_data()  # a missing file says itself how to get it
    try:
        stage = "backbone"
        backbone = instantiate(spec.backbone, input_shape=tuple(datamodule.input_shape))
        heads = make_heads(spec.scenario, backbone.output_dim, datamodule.head_outputs)
        stage = "optimizer"
        optimizer = instantiate(spec.optimizer)
        stage = "update"
        updating = update_options(spec.update, backbone, int(datamodule.num_tasks))
        stage = "cl_algorithm"
        algorithm = instantiate(
            spec.cl_algorithm,
            backbone=backbone,
            heads=heads,
            optimizer=optimizer,
            scenario=spec.scenario,
            **updating,
        )
    except ConfigError:
        raise
    except Exception as exc:  # every constructor refusal is bad input
        raise _refused(stage, exc) from exc
    return Components(datamodule, algorithm)


def _refused(stage: str, exc: Exception) -> ConfigError:
    message = one_line(exc)
    for prefix in ("ValueError: ", "TypeError: "):
        message = message.removeprefix(prefix)
    return ConfigError(f"{stage}: {message}")

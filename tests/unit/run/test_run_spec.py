"""The run description: the checked config resolved once, frozen, read by every part of a run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from omegaconf.errors import ReadonlyConfigError

from clarena.core.errors import ConfigError
from clarena.run.components import build_components
from clarena.run.config import compose_config
from clarena.run.loop_settings import LoopSettings
from clarena.run.spec import RunSpec, to_plain


def test_the_spec_is_typed_resolved_and_frozen(tmp_path: Path) -> None:
    run = tmp_path / "run"
    spec = RunSpec.of(compose_config([f"output_dir={run}", "seed=7", "trainer.max_steps=3"]))
    assert spec.run_dir == run and spec.seed == 7 and spec.scenario == "TIL"
    assert isinstance(spec.settings, LoopSettings) and spec.settings.max_steps == 3
    assert spec.loggers["csv"].save_dir == str(run)  # `${output_dir}` resolved, once
    assert spec.config["output_dir"] == str(run) and "hydra" not in spec.config
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 8  # type: ignore[misc]
    with pytest.raises(ReadonlyConfigError):
        spec.cl_algorithm.temperature = 9.0
    with pytest.raises(TypeError):
        spec.config["seed"] = 8  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.config["trainer"]["max_steps"] = 8  # type: ignore[index]
    assert spec.config["backbone"]["hidden_dims"] == (256, 256)  # lists become tuples
    copy = spec.plain_config()
    assert copy["backbone"]["hidden_dims"] == [256, 256]  # plain lists and dicts again
    composed = compose_config([f"output_dir={run}", "seed=7", "trainer.max_steps=3"])
    assert copy == {k: v for k, v in to_plain(composed).items() if k != "hydra"}
    copy["trainer"]["max_steps"] = 99
    assert spec.config["trainer"]["max_steps"] == 3  # a copy: the spec stays as described


def test_a_config_composed_with_hydras_node_is_described_without_it(tmp_path: Path) -> None:
    """`clarena train`'s pre-flight check builds the components from the config it composed with
    Hydra's own node (whose job values are unset until the job runs)."""
    cfg = compose_config([f"output_dir={tmp_path / 'run'}"], return_hydra_config=True)
    assert "hydra" in cfg
    spec = RunSpec.of(cfg)
    assert "hydra" not in spec.config
    components = build_components(spec, load_data=False)
    assert type(components.algorithm).__name__ == "LwF"


def test_the_trainer_node_builds_the_settings_and_nothing_else(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cfg = compose_config([f"output_dir={tmp_path / 'run'}"])
    OmegaConf.set_struct(cfg, False)
    cfg.trainer = {"_target_": "pathlib.Path.touch", "self": str(marker)}
    with pytest.raises(ConfigError) as refused:
        RunSpec.of(cfg)
    message = str(refused.value)
    assert message.startswith("trainer._target_='pathlib.Path.touch' is not the loop's settings")
    assert "clarena.run.loop_settings.LoopSettings" in message and "\n" not in message
    assert not marker.exists()


def test_a_trainer_key_the_settings_do_not_have_is_one_line(tmp_path: Path) -> None:
    cfg = compose_config([f"output_dir={tmp_path / 'run'}"])
    OmegaConf.set_struct(cfg, False)
    cfg.trainer.warp_speed = 9
    with pytest.raises(ConfigError, match=r"^trainer: .*'warp_speed'") as refused:
        RunSpec.of(cfg)
    assert "\n" not in str(refused.value)

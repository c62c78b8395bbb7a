"""The loop's settings (the config's `trainer` node) and what replaced the former loops' options."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate

from clarena.core.errors import ConfigError
from clarena.run.config import compose_config, validate_config
from clarena.run.loop import HOOKS
from clarena.run.loop_settings import LoopSettings, check_loop_config
from clarena.run.saved_config import upgrade


def test_the_default_trainer_node_builds_the_loop_settings() -> None:
    settings = instantiate(compose_config([]).trainer)
    assert isinstance(settings, LoopSettings)
    assert (settings.accelerator, settings.devices, settings.precision) == ("auto", 1, "32-true")
    assert (settings.max_epochs, settings.max_steps) == (3, -1)
    assert (settings.checkpoint_every_minutes, settings.checkpoint_every_n_steps) == (10, None)
    assert settings.fabric_strategy() == "auto"
    debug = instantiate(compose_config(["trainer=debug"]).trainer)
    assert (debug.checkpoint_every_minutes, debug.checkpoint_every_n_steps) == (None, None)


@pytest.mark.parametrize(
    ("overrides", "strategy"),
    [
        (["trainer.devices=2"], "ddp_find_unused_parameters_true"),  # devices=N: N processes
        (["trainer=ddp"], "ddp_find_unused_parameters_true"),
        (["trainer.num_nodes=2"], "ddp_find_unused_parameters_true"),
        (["trainer.devices=2", "trainer.strategy=ddp"], "ddp"),
        (["trainer.devices=auto"], "auto"),
    ],
)
def test_several_processes_are_ddp_without_a_second_switch(
    overrides: list[str], strategy: str
) -> None:
    assert instantiate(compose_config(overrides).trainer).fabric_strategy() == strategy


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["+fit_loop=lean"], "fit_loop='lean': every run uses the one loop on Lightning Fabric; "
         "remove fit_loop"),
        (["trainer._target_=lightning.pytorch.Trainer"], "trainer._target_=lightning.pytorch."
         "Trainer: the loop runs on Lightning Fabric now; set trainer._target_=clarena.run."
         "loop_settings.LoopSettings (or pick trainer=default, cpu, gpu, ddp)"),
        (["+trainer.limit_val_batches=1.0"], "trainer.limit_val_batches: the loop runs no "
         "validation; remove it"),
        (["+trainer.enable_checkpointing=false"], "trainer.enable_checkpointing: the within-task "
         "checkpoint is trainer.checkpoint_every_minutes / trainer.checkpoint_every_n_steps "
         "(both null: none)"),
        (["+callbacks.ckpt._target_=lightning.pytorch.callbacks.ModelCheckpoint"], "callbacks."
         "ckpt: the within-task checkpoint is no longer a ModelCheckpoint callback; remove it and "
         "set trainer.checkpoint_every_minutes (default 10) or trainer.checkpoint_every_n_steps"),
        (["trainer.checkpoint_every_minutes=0"], "trainer.checkpoint_every_minutes=0: use a "
         "positive number, or null for no checkpoint by time"),
        (["trainer.checkpoint_every_n_steps=2.5"], "trainer.checkpoint_every_n_steps=2.5: use a "
         "positive integer, or null for no checkpoint by steps"),
        (["trainer.precision=64"], "trainer.precision='64': use one of 32-true, 32, bf16-mixed, "
         "16-mixed"),
        (["trainer.gradient_clip_algorithm=l2"], "trainer.gradient_clip_algorithm='l2': use norm "
         "or value"),
        (["trainer.max_epoch=3"], "unknown config key 'trainer.max_epoch'"),
    ],
)  # fmt: skip
def test_what_the_loop_no_longer_takes_is_refused_naming_what_replaced_it(
    overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        validate_config(compose_config([*overrides, "output_dir=/tmp/unused"]), build=False)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_trainer_key_that_is_no_setting_names_the_settings() -> None:
    cfg = compose_config(["+trainer.benchmark=true", "output_dir=/tmp/unused"])
    with pytest.raises(ConfigError, match=r"trainer \(LoopSettings\) takes no argument 'bench"):
        validate_config(cfg, build=False)


def test_an_earlier_run_folders_trainer_becomes_the_loop_settings() -> None:
    checkpoint = {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "every_n_epochs": 1}
    old = {
        "fit_loop": "auto",
        "trainer": {
            "_target_": "lightning.pytorch.Trainer",
            "accelerator": "auto",
            "devices": 2,
            "strategy": "ddp_find_unused_parameters_true",
            "max_epochs": -1,
            "max_steps": 20,
            "limit_val_batches": 0.0,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 10,
            "enable_progress_bar": True,
            "enable_model_summary": False,
            "deterministic": False,
            "default_root_dir": "${output_dir}",
        },
        "callbacks": {"within_task_checkpoint": checkpoint},
    }
    new = upgrade(old)
    assert new == {
        "trainer": {
            "_target_": "clarena.run.loop_settings.LoopSettings",
            "accelerator": "auto",
            "devices": 2,
            "strategy": "ddp_find_unused_parameters_true",
            "max_epochs": -1,
            "max_steps": 20,
            "log_every_n_steps": 10,
            "enable_progress_bar": True,
            "checkpoint_every_minutes": 10,
            "checkpoint_every_n_steps": None,
        },
        "callbacks": {},
    }
    check_loop_config(new)
    assert instantiate(new["trainer"]).fabric_strategy() == "ddp_find_unused_parameters_true"
    steps = {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "every_n_train_steps": 500}
    old = {"trainer": {"_target_": "lightning.pytorch.Trainer"}, "callbacks": {"c": steps}}
    assert upgrade(old)["trainer"]["checkpoint_every_n_steps"] == 500
    none = {"trainer": {"_target_": "lightning.pytorch.Trainer"}, "callbacks": {}}
    assert upgrade(none)["trainer"]["checkpoint_every_minutes"] is None  # it had none
    current = compose_config([])
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(current, resolve=False)
    assert upgrade(dict(plain)) == plain  # type: ignore[arg-type]


def test_the_loop_hooks_are_not_lightning_module_hooks() -> None:
    """Fabric lists the module among its callbacks after a setup: its own hooks must not run."""
    import lightning.pytorch as pl

    assert not [hook for hook in HOOKS if hasattr(pl.LightningModule, hook)]


def test_lightnings_nvml_check_is_lifted_inside_the_loop_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from clarena.run.loop import NVML_CHECK_ENV, plain_cuda_check

    monkeypatch.setenv(NVML_CHECK_ENV, "1")
    with plain_cuda_check():
        assert NVML_CHECK_ENV not in os.environ
    assert os.environ[NVML_CHECK_ENV] == "1"
    monkeypatch.delenv(NVML_CHECK_ENV)
    with plain_cuda_check():
        pass
    assert NVML_CHECK_ENV not in os.environ


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("fit_loop=lean", "fit_loop: every run uses the one loop on Lightning Fabric; remove "
         "fit_loop"),
        ("trainer.limit_val_batches=0", "trainer.limit_val_batches: the loop runs no validation; "
         "remove it"),
    ],
)  # fmt: skip
def test_a_former_option_on_the_command_line_names_what_replaced_it(
    override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        compose_config([override])
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("settings", "env", "rank"),
    [
        (LoopSettings(devices=2), {"SLURM_NTASKS": "2", "SLURM_PROCID": "1"}, 1),
        (LoopSettings(num_nodes=2), {"SLURM_NTASKS": "4", "SLURM_PROCID": "3"}, 3),
        (LoopSettings(strategy="ddp"), {"SLURM_NTASKS": "2", "SLURM_PROCID": "1"}, 1),
        (LoopSettings(), {"SLURM_NTASKS": "2", "SLURM_PROCID": "1"}, 0),  # one process: no DDP
        (LoopSettings(devices="auto"), {"SLURM_NTASKS": "2", "SLURM_PROCID": "1"}, 0),
        (LoopSettings(devices=2), {"SLURM_PROCID": "1"}, 0),  # not started by srun
    ],
)
def test_slurm_rank_reads_the_loop_settings(settings, env, rank, monkeypatch) -> None:
    from clarena.run.ddp import slurm_rank

    for name in ("SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert slurm_rank(settings) == rank

"""Which loop runs a config, and the lean loop's parts that need no training run."""

from __future__ import annotations

import os

import pytest

from clarena.pipelines.config import compose_config
from clarena.pipelines.errors import ConfigError
from clarena.pipelines.fit_loop import (
    NVML_CHECK_ENV,
    checkpoint_interval,
    guard_interval,
    lean_refusal,
    plain_cuda_check,
    use_lean,
)
from clarena.pipelines.progress_bar import LeanProgressBar, task_label


def test_the_default_config_runs_on_the_lean_loop() -> None:
    cfg = compose_config([])
    assert lean_refusal(cfg) is None
    assert use_lean(cfg)
    assert checkpoint_interval(cfg) == (10.0, None)  # trainer/default.yaml: every 10 minutes
    assert guard_interval(cfg) == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["trainer=ddp"], "trainer.devices=2"),
        (["+trainer.gradient_clip_val=1.0"], "trainer.gradient_clip_val is set"),
        (["trainer.limit_val_batches=1.0"], "trainer.limit_val_batches=1.0"),
        (["+trainer.precision=16-mixed"], "trainer.precision='16-mixed'"),
        (["trainer.deterministic=true"], "trainer.deterministic=True"),
        (
            ["+callbacks.lr._target_=lightning.pytorch.callbacks.LearningRateMonitor"],
            "callbacks.lr is lightning.pytorch.callbacks.LearningRateMonitor (only Lightning's "
            "Trainer runs callbacks)",
        ),
    ],
)
def test_what_the_lean_loop_cannot_run_goes_to_the_trainer(
    overrides: list[str], reason: str
) -> None:
    cfg = compose_config(overrides)
    assert lean_refusal(cfg) == reason
    assert not use_lean(cfg)
    lean = compose_config([*overrides, "fit_loop=lean"])
    with pytest.raises(ConfigError, match=r"fit_loop=lean cannot run this config \(") as err:
        use_lean(lean)
    assert reason in str(err.value) and "\n" not in str(err.value)


def test_fit_loop_lightning_always_uses_the_trainer_and_typos_are_refused() -> None:
    assert not use_lean(compose_config(["fit_loop=lightning"]))
    with pytest.raises(ConfigError, match=r"fit_loop='fabric': use one of auto, lean, lightning"):
        use_lean(compose_config(["fit_loop=fabric"]))


def test_the_debug_callbacks_keep_the_nan_guard_and_no_checkpoint() -> None:
    cfg = compose_config(["trainer=debug"])
    assert use_lean(cfg)
    assert checkpoint_interval(cfg) == (None, None)
    assert guard_interval(cfg) == 1


def test_the_checkpoint_interval_is_read_and_checked() -> None:
    cfg = compose_config(["trainer.checkpoint_every_n_steps=200"])
    assert checkpoint_interval(cfg) == (10.0, 200)
    cfg = compose_config(["trainer.checkpoint_every_minutes=0.5"])
    assert checkpoint_interval(cfg) == (0.5, None)
    for override, message in [
        ("trainer.checkpoint_every_minutes=0", "trainer.checkpoint_every_minutes=0: use a "
         "positive number, or null for no checkpoint by time"),
        ("trainer.checkpoint_every_n_steps=2.5", "trainer.checkpoint_every_n_steps=2.5: use a "
         "positive integer, or null for no checkpoint by steps"),
        ("trainer.checkpoint_every_minutes=abc", "trainer.checkpoint_every_minutes='abc'"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError) as err:
            use_lean(compose_config([override]))
        assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_model_checkpoint_callback_is_refused_naming_what_replaced_it() -> None:
    cfg = compose_config(["+callbacks.ckpt._target_=lightning.pytorch.callbacks.ModelCheckpoint"])
    with pytest.raises(ConfigError) as err:
        use_lean(cfg)
    assert str(err.value) == (
        "callbacks.ckpt: the within-task checkpoint is no longer a ModelCheckpoint callback; "
        "remove it and set trainer.checkpoint_every_minutes (default 10) or "
        "trainer.checkpoint_every_n_steps"
    )


def test_an_earlier_run_folders_checkpoint_callback_becomes_the_trainer_interval() -> None:
    from clarena.pipelines.legacy_config import upgrade

    node = {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "every_n_epochs": 1}
    old = {"trainer": {"max_steps": 5}, "callbacks": {"within_task_checkpoint": node}}
    assert upgrade(old) == {
        "trainer": {"max_steps": 5, "checkpoint_every_minutes": 10,
                    "checkpoint_every_n_steps": None},
        "callbacks": {},
    }  # fmt: skip
    node = {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "every_n_train_steps": 500}
    old = {"trainer": {}, "callbacks": {"c": node}}
    assert upgrade(old)["trainer"] == {
        "checkpoint_every_minutes": 10,
        "checkpoint_every_n_steps": 500,
    }


def test_lightnings_nvml_check_is_lifted_inside_the_lean_loop_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(NVML_CHECK_ENV, "1")
    with plain_cuda_check():
        assert NVML_CHECK_ENV not in os.environ
    assert os.environ[NVML_CHECK_ENV] == "1"
    monkeypatch.delenv(NVML_CHECK_ENV)
    with plain_cuda_check():
        pass
    assert NVML_CHECK_ENV not in os.environ


def test_the_bar_label_counts_from_one_and_names_a_step_budget() -> None:
    assert task_label(3, 5, 1, 3, -1) == "task 3/5 · epoch 2/3"
    assert task_label(3, 5, 1, -1, 2000) == "task 3/5 · epoch 2 · 2000 steps"
    assert task_label(None, None, 0, None, -1) == "epoch 1"


def test_the_lean_bar_redraws_at_most_every_refresh_seconds_and_at_an_epoch_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import clarena.pipelines.progress_bar as module

    now = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: now[0])
    bar = LeanProgressBar(1, 2, max_epochs=1, max_steps=-1, refresh_seconds=0.1)
    bar.start()
    try:
        bar.epoch_start(0, total=50)
        for done in range(1, 51):
            now[0] += 0.01  # 10 ms a step: one redraw in ten
            bar.update(done, 0.5, force=done == 50)
        assert bar.redraws == 6  # steps 1, 11, 21, 31, 41 and the epoch's last
    finally:
        bar.stop()
    with pytest.raises(ValueError, match="refresh_seconds must be >= 0"):
        LeanProgressBar(1, 2, 1, -1, refresh_seconds=-1)

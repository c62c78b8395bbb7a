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
    assert checkpoint_interval(cfg) == (0, 1)  # callbacks/default.yaml: every epoch
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
        (
            ["+callbacks.within_task_checkpoint.monitor=val/acc"],
            "callbacks.within_task_checkpoint sets monitor",
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
    assert checkpoint_interval(cfg) == (0, 0)
    assert guard_interval(cfg) == 1


def test_a_step_interval_is_the_lean_checkpoint_interval_and_epoch_ends_under_a_trainer() -> None:
    from clarena.pipelines.config import callback_nodes
    from clarena.pipelines.task_loop import _at_epoch_ends

    cfg = compose_config(
        [
            "+callbacks.within_task_checkpoint.every_n_train_steps=200",
            "callbacks.within_task_checkpoint.every_n_epochs=null",
        ]
    )
    assert checkpoint_interval(cfg) == (200, 0)
    node = _at_epoch_ends(callback_nodes(cfg)["within_task_checkpoint"])
    assert node.every_n_train_steps is None and node.every_n_epochs == 1


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

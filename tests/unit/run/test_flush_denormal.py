"""`flush_denormal`: a run flushes subnormal floats to zero while it runs, then gives the caller
its own setting back; a run folder from before the key keeps IEEE subnormals. The garbage
collector likewise: a run collects, and the caller's state of the collector comes back."""

from __future__ import annotations

import contextlib
import gc
import weakref
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from clarena.core.lazy import collector_paused
from clarena.run import task_loop
from clarena.run.config import compose_config
from clarena.run.spec import RunSpec
from clarena.run.task_loop import flushes_denormals, run_experiment


def test_flushes_denormals_reads_this_threads_setting() -> None:
    before = flushes_denormals()
    try:
        torch.set_flush_denormal(True)
        assert flushes_denormals()
        assert (torch.tensor([1e-38]) * 0.5).item() == 0.0
        torch.set_flush_denormal(False)
        assert not flushes_denormals()
        assert 0.0 < (torch.tensor([1e-38]) * 0.5).item() < torch.finfo(torch.float32).tiny  # kept
    finally:
        torch.set_flush_denormal(before)


@pytest.mark.parametrize(("setting", "inside"), [(True, True), (False, False), (None, False)])
def test_a_run_flushes_while_it_runs_and_restores_the_callers_setting(
    setting: bool | None, inside: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    build = task_loop.build_components

    def recording(cfg):  # the first torch work of a run
        seen.append(flushes_denormals())
        return build(cfg)

    monkeypatch.setattr(task_loop, "build_components", recording)
    cfg = compose_config(
        ["trainer.max_epochs=-1", "trainer.max_steps=2", "logger=none",
         "trainer.enable_progress_bar=false", "cl_dataset.num_tasks=2",
         f"output_dir={tmp_path / 'run'}"]
    )  # fmt: skip
    with open_dict(cfg):
        if setting is None:  # a config.yaml written before the key existed
            del cfg["flush_denormal"]
        else:
            cfg.flush_denormal = setting
    (tmp_path / "run").mkdir()
    before = flushes_denormals()
    torch.set_flush_denormal(not inside)  # the caller's setting differs from the run's
    try:
        run_experiment(RunSpec.of(cfg, tmp_path / "run"))
        assert seen == [inside]
        assert flushes_denormals() is (not inside)
    finally:
        torch.set_flush_denormal(before)


def test_new_runs_flush_by_default() -> None:
    assert compose_config([]).flush_denormal is True


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.parametrize("paused", [True, False])
def test_a_run_collects_garbage_even_where_its_caller_paused_the_collector(
    paused: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`clarena train` pauses the collector through its imports (`collector_paused`); the run
    itself collects, with what existed before it frozen, and the caller's state comes back."""
    seen: list[tuple[bool, int]] = []
    cycles: list[weakref.ref] = []

    def run(*args) -> None:
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        cycle = _Cycle()  # garbage with a cycle, as a Trainer and its module leave behind
        cycles.append(weakref.ref(cycle))

    monkeypatch.setattr(task_loop, "_run", run)
    cfg = compose_config(["logger=none", f"output_dir={tmp_path / 'run'}"])
    gc.collect()
    with collector_paused() if paused else contextlib.nullcontext():
        run_experiment(RunSpec.of(cfg, tmp_path / "run"))
        assert gc.isenabled() is not paused
        assert cycles[0]() is None  # the run's cyclic garbage is freed before it returns
    assert gc.isenabled()
    assert seen[0][0] is True and seen[0][1] > 0  # collecting, the older objects frozen
    assert gc.get_freeze_count() == 0  # unfrozen again


def test_clarena_train_pauses_the_collector_through_its_imports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clarena.commands import train

    monkeypatch.setattr(train, "_main", lambda args: 3 if gc.isenabled() else 7)
    assert train.main([]) == 7  # paused while the command composes, checks and imports
    assert gc.isenabled()

"""A received run folder is inert: reading its `config.yaml` runs nothing, reads no environment,
writes nothing outside the folder (issue 37, items 1-4 and 6).

Each payload is first shown to be live where it is (OmegaConf would evaluate it), then refused by
`load_run_config` with one line, leaving no marker file behind.
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf

from clarena.core.errors import ConfigError
from clarena.run.config import compose_config
from clarena.run.saved_config import load_run_config
from clarena.run.spec import to_plain
from clarena.run_folder import checkpoint as ckpt
from clarena.run_folder.folder import relocatable
from clarena.run_folder.received import MAX_YAML_NODES


class _Payload:
    """A pickle that creates `marker` when it is loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def config_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The `config.yaml` a default run writes (composed and written as the run does)."""
    run = tmp_path_factory.mktemp("composed") / "run"
    cfg = compose_config([f"output_dir={run}"])
    return OmegaConf.to_yaml(relocatable(to_plain(cfg), run))


@pytest.fixture
def run(tmp_path: Path, config_text: str) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text(config_text)
    return folder


def _edit(run: Path, **top_level: object) -> None:
    data = yaml.safe_load((run / "config.yaml").read_text())
    data.update(top_level)
    (run / "config.yaml").write_text(yaml.safe_dump(data))


def _refused(run: Path, *needles: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_run_config(run)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_the_written_config_loads_with_its_folder_resolved(run: Path) -> None:
    cfg = load_run_config(run)
    assert cfg.output_dir == str(run)
    assert cfg.logger.csv.save_dir == str(run)  # `${output_dir}` resolved, once


def test_a_folder_written_before_the_split_of_pipelines_loads_in_todays_modules(run: Path) -> None:
    """Run folders name the loop's settings, loggers and callbacks by module: the ones written
    while they lived in `clarena.pipelines` still load, naming today's modules."""
    text = (run / "config.yaml").read_text()
    assert "_target_: clarena.run.loop_settings.LoopSettings" in text
    old = text.replace("clarena.run.loop_settings.", "clarena.pipelines.loop_settings.")
    old = old.replace("clarena.run.loggers.", "clarena.pipelines.loggers.")
    old += "callbacks:\n  guard:\n    _target_: clarena.pipelines.callbacks.NonFiniteLossGuard\n"
    (run / "config.yaml").write_text(old)
    cfg = load_run_config(run)
    assert cfg.trainer._target_ == "clarena.run.loop_settings.LoopSettings"
    assert cfg.logger.csv._target_ == "clarena.run.loggers.CSVLogger"
    assert cfg.callbacks.guard._target_ == "clarena.run.callbacks.NonFiniteLossGuard"
    # only what moved is renamed: any other name under the former package is refused
    _edit(run, backbone={"_target_": "clarena.pipelines.train.main"})
    _refused(run, "backbone._target_", "'clarena.pipelines.train.main'")


def test_oc_create_builds_no_target_and_loads_no_pickle(run: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = run / "checkpoints" / "evil.pt"
    evil.parent.mkdir()
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    payload = (
        "${oc.create:'{_target_: torch.load, f: ${output_dir}/checkpoints/evil.pt, "
        "weights_only: false}'}"
    )
    live = OmegaConf.create({"output_dir": str(run), "t": payload})
    assert OmegaConf.to_container(live, resolve=True)["t"]["_target_"] == "torch.load"  # live
    _edit(run, cl_algorithm={"_target_": "clarena.cl_algorithms.LwF", "temperature": payload})
    _refused(run, "cl_algorithm.temperature", "${oc.create:...}")
    assert not marker.exists()


def test_a_target_hidden_in_a_reference_is_checked_after_resolution(run: Path) -> None:
    _edit(run, hidden="builtins.open", backbone={"_target_": "${hidden}", "file": "x", "mode": "w"})
    _refused(run, "backbone._target_", "'builtins.open'", "--trust-config")


def test_the_environment_is_never_read(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "s3cr3t-value")
    _edit(run, experiment_name="${oc.env:SECRET_TOKEN,x}")
    message = _refused(run, "experiment_name", "${oc.env:...}")
    assert "s3cr3t" not in message


@pytest.mark.parametrize("resolver", ["oc.decode", "oc.select", "clarena_custom"])
def test_no_resolver_is_evaluated(run: Path, resolver: str) -> None:
    _edit(run, experiment_name=f"${{{resolver}:'x'}}")
    _refused(run, "experiment_name", f"${{{resolver}:...}}")


def test_an_escaped_interpolation_cannot_come_back_to_life(run: Path) -> None:
    _edit(run, experiment_name="\\${oc.env:HOME}")
    _refused(run, "experiment_name", "would be interpolated")


@pytest.mark.parametrize("name", ["train.log", "checkpoints", "results"])
def test_a_symlink_inside_the_folder_is_refused(run: Path, tmp_path: Path, name: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / name).symlink_to(elsewhere if name != "train.log" else elsewhere / "log")
    _refused(run, str(run / name), "symbolic link")


def test_a_logger_path_outside_the_folder_is_refused_and_not_created(
    run: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    _edit(
        run,
        logger={
            "csv": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": str(elsewhere)}
        },
    )
    _refused(run, "logger.csv.save_dir", "outside the run folder")
    _edit(
        run, logger={"csv": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": "../x"}}
    )
    _refused(run, "logger.csv.save_dir")
    assert not elsewhere.exists()


def test_a_yaml_alias_bomb_is_refused_quickly(run: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]  # 10^8
    (run / "config.yaml").write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    _refused(run, f"over {MAX_YAML_NODES:,} values", "aliases")
    assert time.monotonic() - start < 5


def test_a_task_checkpoint_holding_another_task_is_detected(tmp_path: Path) -> None:
    for task in (1, 2):
        ckpt.save_task_checkpoint(tmp_path, task, 2, {"w": torch.zeros(1)}, {}, {})
    first = ckpt.task_checkpoint_path(tmp_path, 1)
    second = ckpt.task_checkpoint_path(tmp_path, 2)
    assert ckpt.load_task_checkpoint(second)["task_id"] == 2
    second.write_bytes(first.read_bytes())
    with pytest.raises(
        ckpt.CheckpointError, match="holds the state after task 1, not after task 2"
    ):
        ckpt.check_task_checkpoints(tmp_path, "")


def test_a_checkpoint_path_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ckpt.CheckpointError, match="is a folder, not a file"):
        ckpt.safe_load(tmp_path)


def test_report_writes_nothing_through_a_symlinked_results_folder(tmp_path: Path) -> None:
    from clarena.commands.report import main as report_main

    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    (elsewhere / "metrics.json").write_text("{}")
    (run / "results").symlink_to(elsewhere)
    assert report_main([str(run)]) == 2
    assert sorted(p.name for p in elsewhere.iterdir()) == ["metrics.json"]

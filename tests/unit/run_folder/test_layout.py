"""Issue 37 item 11: a run folder is never inside another run, `clarena init` never writes into a
folder that holds files without being told to."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarena.commands import init_configs
from clarena.core.errors import ConfigError
from clarena.run_folder.layout import (
    RUN_SUBFOLDERS,
    check_not_inside_another_run,
    inside_another_run,
)


def _finished_run(folder: Path, lock: bool = True) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "results").mkdir()
    (folder / "config.yaml").write_text("seed: 1\n")
    if lock:
        (folder / ".clarena.lock").write_text("")
    return folder


def test_an_output_dir_inside_another_run_is_found(tmp_path: Path) -> None:
    run = _finished_run(tmp_path / "outputs" / "default" / "run1")
    assert inside_another_run(run / "checkpoints" / "new") == run
    assert inside_another_run(run / "results" / "a" / "b") == run
    assert inside_another_run(run) is None  # the run itself: a resume
    assert inside_another_run(tmp_path / "outputs" / "default" / "run2") is None
    copied = _finished_run(tmp_path / "copied", lock=False)  # no lock: config.yaml + subfolders
    assert inside_another_run(copied / "checkpoints" / "x") == copied
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.yaml").write_text("a: 1\n")  # a user's config, not a run
    assert inside_another_run(tmp_path / "mine" / "run") is None
    link = tmp_path / "link"
    link.symlink_to(run / "checkpoints")
    assert inside_another_run(link / "new") == run  # through a symbolic link too


def test_check_refuses_in_one_line_naming_the_run(tmp_path: Path) -> None:
    run = _finished_run(tmp_path / "run1")
    with pytest.raises(ConfigError) as refused:
        check_not_inside_another_run(run / "checkpoints")
    message = str(refused.value)
    assert "\n" not in message and f"inside the run folder {run}" in message
    assert f"output_dir={tmp_path / 'new_run'}" in message
    check_not_inside_another_run(tmp_path / "run2")  # beside it: fine


def test_the_run_subfolders_are_the_runs_own() -> None:
    from clarena.run_folder.checkpoint import CHECKPOINT_DIR

    assert CHECKPOINT_DIR in RUN_SUBFOLDERS


def test_init_refuses_a_folder_that_holds_files(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert init_configs.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{folder} is not empty (1 entry: notes.txt)" in err and "--force" in err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]  # nothing written
    assert init_configs.main([str(folder), "--force"]) == 0
    assert (folder / "experiment" / "my_er_cil.yaml").is_file()
    assert (folder / "notes.txt").read_text() == "mine"
    assert init_configs.main([str(folder), "--force"]) == 2  # never overwrites, even forced
    assert "already exists" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert init_configs.main([str(empty)]) == 0  # an empty folder is fine

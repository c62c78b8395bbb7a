"""The commands `clarena init` suggests work as written; the summary of a one-task run."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import pytest
import torch
from rich.console import Console

from clarena.commands import init_configs, train
from clarena.metrics import CLResults
from clarena.reports.summary import print_summary


def test_the_cfg_job_command_of_the_init_readme_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert init_configs.main(["mine"]) == 0
    readme = (tmp_path / "mine" / "README.md").read_text()
    commands = [line.strip() for line in readme.splitlines() if "--cfg job" in line]
    assert commands == ["clarena train --config-dir mine --cfg job experiment=my_er_cil"]
    capsys.readouterr()
    args = shlex.split(commands[0])[2:]  # drop "clarena train"
    assert train.main(args) == 0
    out = capsys.readouterr().out
    assert "experiment_name: my_er_cil" in out
    assert re.search(r"^  buffer_size: 500$", out, re.MULTILINE)  # the user's own config


def test_a_one_task_summary_says_na_instead_of_a_dash_percent() -> None:
    results = CLResults("TIL")
    results.add(
        after_task=1,
        test_task=1,
        preds=torch.tensor([0, 1, 1, 1]),
        targets=torch.tensor([0, 1, 0, 1]),
    )
    buffer = io.StringIO()
    print_summary(results, Path("run"), console=Console(file=buffer, width=200))
    text = buffer.getvalue()
    assert "average accuracy 75.00%   forgetting n/a   backward transfer n/a" in text
    assert "-%" not in text

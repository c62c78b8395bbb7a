"""`clarena list`: full descriptions, supported scenarios, `--json`; the `trainer=debug` overlay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clarena.cl_algorithms import ALGORITHMS
from clarena.cl_datasets import DataIncrementalCLDataset, SplitCLDataset
from clarena.commands import listing
from clarena.run.config import compose_config
from clarena.run.spec import callback_nodes

EXAMPLES = Path(__file__).resolve().parents[3] / "example_configs"
UPDATE_FMNIST = (
    "Data-incremental Fashion-MNIST (scenario DataIL): the training set in 5 disjoint, "
    "class-balanced chunks; each update brings the next chunk (or, with cumulative, all data so "
    "far). Every task is tested on the whole test set: the model-update setting of the "
    "backward-compatibility studies."
)


def test_list_prints_full_descriptions_wrapped_and_the_scenarios(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert listing.main(["cl_dataset", "cl_algorithm"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert len(UPDATE_FMNIST) > 150 and UPDATE_FMNIST in " ".join(out.split())
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  bc_new_error "))
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("     "):
            break
        block.append(line.strip())
    assert block[-1] == "scenarios: TIL, CIL, DIL, DataIL"
    assert "  update_fmnist  " in out and "scenarios: DataIL" in out


def test_list_json_holds_description_target_and_scenarios(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        listing.main(["--json", "cl_dataset", "cl_algorithm", "trainer", "-cd", str(EXAMPLES)]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["cl_dataset", "cl_algorithm", "trainer"]
    assert data["cl_dataset"]["update_fmnist"] == {
        "description": UPDATE_FMNIST,
        "target": "clarena.cl_datasets.DataIncrementalCLDataset",
        "scenarios": list(DataIncrementalCLDataset.supported_scenarios),
    }
    assert data["cl_dataset"]["split_fmnist"]["scenarios"] == list(
        SplitCLDataset.supported_scenarios
    )
    for name, algorithm in ALGORITHMS.items():  # read from the source, as the classes say
        assert data["cl_algorithm"][name]["scenarios"] == list(algorithm.supported_scenarios), name
    # a user option without a _target_ of its own inherits its parent's (defaults: [er])
    assert data["cl_algorithm"]["er_big_buffer"]["target"] == "clarena.cl_algorithms.ER"
    assert data["cl_algorithm"]["er_big_buffer"]["scenarios"] == list(
        ALGORITHMS["er"].supported_scenarios
    )
    assert "scenarios" not in data["trainer"]["debug"]


def test_scenarios_of_an_unknown_target_are_unknown() -> None:
    assert listing.supported_scenarios("no_such_package.Thing") is None
    assert listing.supported_scenarios("clarena.cl_datasets.NoSuchClass") is None


def test_a_missing_config_dir_is_refused(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert listing.main(["-cd", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_trainer_debug_runs_a_few_cpu_steps_without_checkpoints() -> None:
    cfg = compose_config(["trainer=debug"])
    assert cfg.trainer.accelerator == "cpu"
    assert cfg.trainer.max_steps == 5 and cfg.trainer.max_epochs == -1
    targets = [node._target_ for node in callback_nodes(cfg).values()]
    assert targets == ["clarena.run.callbacks.NonFiniteLossGuard"]
    assert cfg.trainer.checkpoint_every_minutes is None  # no within-task checkpoint
    assert cfg.trainer.checkpoint_every_n_steps is None
    default = compose_config([])
    assert callback_nodes(default) == {} and default.trainer.checkpoint_every_minutes == 10
    # the command line still wins over the overlay's choice of callbacks
    chosen = compose_config(["trainer=debug", "callbacks=default"])
    assert callback_nodes(chosen) == {}

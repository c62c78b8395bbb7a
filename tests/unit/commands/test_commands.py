"""`clarena train` refusing bad input before anything runs, `clarena init` and `clarena list`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from clarena.commands import init_configs, listing, train

EXAMPLES = Path(__file__).resolve().parents[3] / "example_configs"


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    run = tmp_path / "outputs" / "done"
    (run / "results").mkdir(parents=True)
    (run / "results" / "accuracy_matrix.csv").write_text("after_training_task,average_accuracy\n")
    (run / "config.yaml").write_text("seed: 1\n")
    return run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["foo=1"], "unknown config key 'foo'"),
        (["cl_algorithm=lfw"], "unknown cl_algorithm 'lfw' (did you mean 'lwf'?)"),
        (["seed=abc"], "wrong type for seed: got 'abc', expected an integer"),
        (["scenario=DataIL"], "does not support scenario=DataIL"),
        (["--bogus"], "unknown option '--bogus'"),
        (["-cd", "no_such_folder"], "--config-dir 'no_such_folder' is not a folder"),
        (["seed=${nope}"], "seed does not resolve (Interpolation key 'nope' not found)"),
        (["optimizer.lr=abc"], "optimizer torch.optim.Adam refuses its arguments (TypeError"),
        (["optimizer.lr=nan"], "(ValueError: Invalid learning rate: nan; given lr=nan"),
        (["optimizer.lr=-1"], "(ValueError: Invalid learning rate: -1; given lr=-1"),
        (["trainer.devices=0"], "trainer.devices=0 runs on no device"),
        (["output_dir=outputs/done/checkpoints/new"], "is inside the run folder"),
        (["output_dir=/etc/passwd"], "output_dir '/etc/passwd' is a file, not a folder; choose"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_touches_nothing(
    args: list[str],
    message: str,
    finished_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    assert train.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clarena train: error: ")
    assert message in err[0]
    assert _snapshot(tmp_path) == before  # no new folder, the finished run untouched


def test_an_existing_run_folder_is_never_written_into(
    finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(finished_run)
    assert train.main([f"output_dir={finished_run}"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"output_dir '{finished_run}' already holds a run; choose a new folder" in err
    assert f"resume={finished_run}" in err
    assert _snapshot(finished_run) == before


def test_resume_refuses_other_overrides_and_non_run_folders(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train.main([f"resume={finished_run}", "seed=2"]) == 2
    assert "takes no other overrides; drop seed=2" in capsys.readouterr().err
    assert train.main([f"resume={tmp_path}"]) == 2
    assert "no config.yaml there, so it is not a clarena run folder" in capsys.readouterr().err


def test_the_default_output_dir_gets_a_suffix_when_taken(tmp_path: Path) -> None:
    taken = tmp_path / "run"
    taken.mkdir()
    (taken / "x").write_text("")
    (tmp_path / "run_2").mkdir()  # empty: free
    assert train._fresh_output_dir(str(taken), explicit=False) == tmp_path / "run_2"
    assert train._fresh_output_dir(str(tmp_path / "new"), explicit=True) == tmp_path / "new"


def test_sweeps_are_checked_with_their_first_values() -> None:
    assert train._first_of_sweeps(["a=1,2", "b=x", "+c=range(3,5)"]) == ["a=1", "b=x", "+c=3"]


def test_init_writes_exactly_the_example_configs(tmp_path: Path) -> None:
    folder = tmp_path / "example_configs"
    assert init_configs.main([str(folder)]) == 0
    assert _snapshot(folder) == _snapshot(EXAMPLES)
    assert init_configs.main([str(folder)]) == 2  # never overwrites


def test_list_shows_shipped_and_user_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert listing.main(["cl_algorithm", "experiment", "-cd", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("algorithms (cl_algorithm=)\n")
    assert "  er_big_buffer " in out
    assert "Experience Replay with a larger, class-balanced buffer" in " ".join(out.split())
    assert "vdv2022_lwf_til" in out and "my_er_cil" in out
    assert "\n  protocol/vdv2022 " not in out  # a shared part, not an experiment
    assert listing.main(["algorithms"]) == 2
    datasets = listing.options("cl_dataset")
    assert "split_digits" in datasets and "update_fmnist" in datasets

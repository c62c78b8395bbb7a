"""What a run folder guarantees: one writer, relocatable, tamper-evident, safe to open.

Every test runs `clarena` as a subprocess on a tiny budget (2 tasks of split digits, 3 steps).
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_train_support import clarena, snapshot

pytestmark = pytest.mark.integration

BASE = ("cl_algorithm=finetuning", "cl_dataset.num_tasks=2", "trainer.max_epochs=-1", "seed=3")
TINY = (*BASE, "trainer.max_steps=3")
LONG = (*BASE, "trainer.max_steps=1000000")  # runs until the test stops it


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert proc.returncode == code, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-task run (read only by the tests: copy it before changing it)."""
    tmp = tmp_path_factory.mktemp("finished")
    proc = clarena("train", *TINY, f"output_dir={tmp / 'run'}", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"run folder {tmp / 'run'}" in proc.stderr.splitlines()[0]  # said when it starts
    return tmp / "run"


def _interrupted_copy(finished: Path, where: Path) -> Path:
    """A copy of `finished` as if it had been killed after task 1."""
    run = where / "run"
    shutil.copytree(finished, run)
    (run / "checkpoints" / "after_task_2.pt").unlink()
    return run


# --- one writer -------------------------------------------------------------------------------


def test_a_second_process_on_a_running_folder_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "CLARENA_KILL_AT"}
    env.update(OMP_NUM_THREADS="1", CLARENA_KILL_AT="")
    first = subprocess.Popen(
        [sys.executable, "-m", "clarena", "train", *LONG, f"output_dir={run}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not (run / "config.yaml").is_file():
            assert first.poll() is None
            time.sleep(0.1)
        in_use = f"in use by process {first.pid}"
        second = clarena("train", *TINY, f"output_dir={run}", cwd=tmp_path)
        _one_line_error(second, 2, str(run), in_use)
        resumed = clarena("train", f"resume={run}", cwd=tmp_path)
        _one_line_error(resumed, 2, str(run), in_use)
        evaluated = clarena("eval", str(run), cwd=tmp_path)
        _one_line_error(evaluated, 2, in_use)
    finally:
        first.kill()
        first.wait()


def test_hydra_run_dir_cannot_overwrite_a_finished_run(finished: Path, tmp_path: Path) -> None:
    before = snapshot(finished)
    proc = clarena("train", *TINY, f"hydra.run.dir={finished}", cwd=tmp_path)
    _one_line_error(proc, 2, str(finished), "already holds a run")
    assert snapshot(finished) == before


# --- relocatable and tamper-evident ------------------------------------------------------------


def test_a_moved_run_folder_resumes_into_itself(finished: Path, tmp_path: Path) -> None:
    original = _interrupted_copy(finished, tmp_path / "a")
    before = snapshot(original)
    moved = tmp_path / "b" / "moved"
    moved.parent.mkdir()
    shutil.copytree(original, moved)
    proc = clarena("train", f"resume={moved}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert snapshot(original) == before  # nothing written into the old place
    assert (moved / "checkpoints" / "after_task_2.pt").is_file()
    assert "${output_dir}" in (moved / "config.yaml").read_text()
    assert (moved / "results" / "accuracy_matrix.csv").read_text() == (
        finished / "results" / "accuracy_matrix.csv"
    ).read_text()


def test_resume_of_an_edited_config_is_refused(finished: Path, tmp_path: Path) -> None:
    run = _interrupted_copy(finished, tmp_path)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("seed: 3", "seed: 4"))
    before = snapshot(run)
    proc = clarena("train", f"resume={run}", cwd=tmp_path)  # refused before anything is built
    _one_line_error(proc, 2, "config.yaml was changed", "restore the config")
    evaluated = clarena("eval", str(run), cwd=tmp_path)
    _one_line_error(evaluated, 2, "config.yaml was changed", "restore the config")
    assert snapshot(run) == before


def test_a_task_checkpoint_copied_over_another_is_refused(finished: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    checkpoints = run / "checkpoints"
    (checkpoints / "after_task_2.pt").write_bytes((checkpoints / "after_task_1.pt").read_bytes())
    evaluated = clarena("eval", str(run), cwd=tmp_path)
    _one_line_error(evaluated, 2, "after_task_2.pt holds the state after task 1, not after task 2")


# --- a run folder is data, not code ------------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _plant(run: Path, marker: Path) -> None:
    payload = run / "payload.pt"
    payload.write_bytes(pickle.dumps(_Payload(marker)))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["backbone"]["extra"] = {
        "_target_": "torch.load",
        "f": str(payload),
        "weights_only": False,
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))


def test_a_planted_target_runs_no_code_on_resume_or_eval(finished: Path, tmp_path: Path) -> None:
    run = _interrupted_copy(finished, tmp_path)
    marker = tmp_path / "pwned"
    _plant(run, marker)
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    _one_line_error(resumed, 2, "backbone.extra._target_", "'torch.load'", "--trust-config")
    evaluated = clarena("eval", str(run), cwd=tmp_path)
    _one_line_error(evaluated, 2, "backbone.extra._target_", "--trust-config")
    assert not marker.exists()


def test_experimental_rerun_is_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    pickled = tmp_path / "config.pickle"
    pickled.write_bytes(pickle.dumps(_Payload(marker)))
    proc = clarena("train", "--experimental-rerun", str(pickled), cwd=tmp_path)
    _one_line_error(proc, 2, "--experimental-rerun", "resume=")
    assert not marker.exists()


# --- one-line errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("seed: [unclosed\n", "is not valid YAML"),
        ("", "is empty"),
        ("- a\n- b\n", "a list, not a mapping"),
    ],
)
def test_a_broken_config_yaml_is_one_line_on_resume(
    content: str, says: str, finished: Path, tmp_path: Path
) -> None:
    run = _interrupted_copy(finished, tmp_path)
    (run / "config.yaml").write_text(content)
    _one_line_error(clarena("train", f"resume={run}", cwd=tmp_path), 2, says)


def test_a_damaged_checkpoint_on_resume_names_the_file(finished: Path, tmp_path: Path) -> None:
    run = _interrupted_copy(finished, tmp_path)
    path = run / "checkpoints" / "after_task_1.pt"
    path.write_bytes(path.read_bytes()[:1000])
    proc = clarena("train", f"resume={run}", cwd=tmp_path)
    _one_line_error(proc, 2, str(path), "truncated or damaged", "delete it")


def test_an_output_folder_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    proc = clarena("train", *TINY, f"output_dir={tmp_path / 'file' / 'run'}", cwd=tmp_path)
    _one_line_error(proc, 2, "cannot create the run folder", "is a file, not a folder")


def test_eval_output_that_is_a_file_is_one_line(finished: Path, tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("x")
    proc = clarena("eval", str(finished), "-o", str(tmp_path / "out.txt"), cwd=tmp_path)
    _one_line_error(proc, 2, "is a file; pass a folder")


# --- signals and unfinished starts -------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_say_where_and_how_to_resume(
    signum: int, code: int, finished: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "CLARENA_KILL_AT"}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clarena", "train", *LONG, f"output_dir={run}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (run / "config.yaml").is_file():
        assert proc.poll() is None
        time.sleep(0.1)
    time.sleep(2.0)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert f"interrupted ({signal.Signals(signum).name}) at task 1/2, step " in last
    assert last.endswith(f"continue it with: clarena train resume={run}")
    assert "Traceback" not in stderr
    assert not list(run.rglob("*.tmp"))


def test_a_run_killed_before_its_config_is_rerun_in_the_same_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([*TINY, f"output_dir={run}"]))
    (run / "train.log").write_text("")
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    line = _one_line_error(resumed, 2, "stopped before it started", "start it again")
    assert "clarena train cl_algorithm=finetuning" in line
    again = clarena("train", *TINY, f"output_dir={run}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (run / "checkpoints" / "after_task_2.pt").is_file()


def test_a_stray_checkpoint_does_not_finish_a_run_and_temporaries_go(
    finished: Path, tmp_path: Path
) -> None:
    run = _interrupted_copy(finished, tmp_path)
    shutil.copy(run / "checkpoints" / "after_task_1.pt", run / "checkpoints" / "after_task_10.pt")
    stale = run / "checkpoints" / ".after_task_2.pt.x1y2z3.tmp"
    stale.write_bytes(b"half a checkpoint")
    proc = clarena("train", f"resume={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "already finished" not in proc.stdout
    assert (run / "checkpoints" / "after_task_2.pt").is_file() and not stale.exists()


def test_files_honour_the_umask(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            "sh",
            "-c",
            f"umask 027 && {sys.executable} -m clarena train {' '.join(TINY)} "
            f"output_dir={tmp_path / 'run'} logger=none",
        ],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "run"
    for name in ("config.yaml", "checkpoints/after_task_2.pt", "results/metrics.json"):
        assert oct((run / name).stat().st_mode & 0o777) == oct(0o640), name


def test_csv_logs_of_a_resumed_run_hold_every_task_on_one_step_axis(
    finished: Path, tmp_path: Path
) -> None:
    import csv

    run = _interrupted_copy(finished, tmp_path)
    assert clarena("train", f"resume={run}", cwd=tmp_path).returncode == 0
    rows = list(csv.DictReader((run / "lightning_logs" / "metrics.csv").open()))
    reference = list(csv.DictReader((finished / "lightning_logs" / "metrics.csv").open()))
    assert {r["task"] for r in rows} == {"1", "2"}
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps)
    assert [(r["task"], r["step"]) for r in rows] == [(r["task"], r["step"]) for r in reference]


# --- a received run folder is inert (issue 37) -------------------------------------------------


def test_a_resolver_payload_runs_nothing_on_resume_or_eval(finished: Path, tmp_path: Path) -> None:
    run = _interrupted_copy(finished, tmp_path)
    marker = tmp_path / "pwned"
    (run / "checkpoints" / "evil.pt").write_bytes(pickle.dumps(_Payload(marker)))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["cl_algorithm"]["evil"] = (
        "${oc.create:'{_target_: torch.load, f: ${output_dir}/checkpoints/evil.pt, "
        "weights_only: false}'}"
    )
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    before = snapshot(run)
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    _one_line_error(resumed, 2, "cl_algorithm.evil", "${oc.create:...}")
    evaluated = clarena("eval", str(run), cwd=tmp_path)
    _one_line_error(evaluated, 2, "cl_algorithm.evil", "${oc.create:...}")
    assert not marker.exists()
    assert snapshot(run) == before


def test_no_secret_from_the_environment_reaches_the_results(finished: Path, tmp_path: Path) -> None:
    run = _interrupted_copy(finished, tmp_path)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["experiment_name"] = "${oc.env:SECRET_TOKEN,x}"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    env = {"SECRET_TOKEN": "s3cr3t-value"}
    resumed = clarena("train", f"resume={run}", cwd=tmp_path, env=env)
    _one_line_error(resumed, 2, "experiment_name", "${oc.env:...}")
    assert "s3cr3t" not in resumed.stderr + resumed.stdout
    assert not any("s3cr3t" in p.read_text(errors="ignore") for p in run.rglob("*") if p.is_file())


def test_a_symlinked_results_folder_is_refused_and_nothing_is_written_through_it(
    finished: Path, tmp_path: Path
) -> None:
    run = _interrupted_copy(finished, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "results", elsewhere)
    (run / "results").symlink_to(elsewhere)
    before = snapshot(elsewhere)
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    _one_line_error(resumed, 2, str(run / "results"), "symbolic link")
    evaluated = clarena("eval", str(run), "-o", str(tmp_path / "eval"), cwd=tmp_path)
    _one_line_error(evaluated, 2, "symbolic link")
    assert snapshot(elsewhere) == before

"""Step-budgeted runs killed with SIGKILL at random moments resume bit-identically.

Each case trains one uninterrupted reference run, then the same run again while a real SIGKILL
lands at random moments (random delays after the run folder holds its config, any phase: training,
testing, writing a checkpoint); each killed run is resumed with `resume=` until it finishes. The
resumed run must end with the reference's accuracy matrix and every tensor of its final checkpoint
identical, bit for bit, on the CPU.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_train_support import clarena

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# 2.5 epochs of split_digits per task: the budget ends inside an epoch, so the step count, not
# the epoch count, ends every task.
STEP_BUDGET = ("trainer.max_epochs=-1", "trainer.max_steps=20", "logger=csv", "seed=3")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLARENA_KILL_AT"}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _flatten(prefix: str, value: object, out: dict[str, object]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}/{key}", item, out)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _flatten(f"{prefix}/{i}", item, out)
    else:
        out[prefix] = value


def final_state(run: Path) -> dict[str, object]:
    """Every leaf (tensors included) of the last task checkpoint but the config and wall times."""
    last = max((run / "checkpoints").glob("after_task_*.pt"), key=lambda p: int(p.stem[11:]))
    state = torch.load(last, map_location="cpu", weights_only=True)
    state.pop("config")
    state.pop("config_digest")  # of config.yaml, which names its own (different) folder
    flat: dict[str, object] = {}
    _flatten("", state, flat)
    return {key: value for key, value in flat.items() if "/task_times/" not in key}


def assert_identical(run: Path, reference: Path) -> None:
    """Same accuracy matrix file and the same value, dtype and shape of every checkpoint leaf."""
    matrix = "results/accuracy_matrix.csv"
    assert (run / matrix).read_text() == (reference / matrix).read_text()
    got, want = final_state(run), final_state(reference)
    assert got.keys() == want.keys()
    differing = [
        key
        for key in want
        if (
            not torch.equal(got[key], want[key]) or got[key].dtype != want[key].dtype
            if isinstance(want[key], torch.Tensor)
            else got[key] != want[key]
        )
    ]
    assert not differing, f"{len(differing)} differing entries, e.g. {differing[:5]}"


def timed_run(command: list[str], run: Path) -> tuple[float, float]:
    """Run `command` to the end; return (seconds until `config.yaml` exists, seconds after)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=run.parent, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    while proc.poll() is None and not (run / "config.yaml").is_file():
        time.sleep(0.05)
    started = time.monotonic()
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    return started - start, time.monotonic() - started


def _start(command: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _wait_for_config(proc: subprocess.Popen[bytes], run: Path) -> None:
    while proc.poll() is None and not (run / "config.yaml").is_file():
        time.sleep(0.05)


def run_with_random_kills(
    args: list[str], run: Path, kills: int, rng: random.Random, timing: tuple[float, float]
) -> int:
    """Start the run, SIGKILL it `kills` times at random moments, resume until it ends.

    `timing` is the reference run's (start-up, training) seconds: the first kill lands at a random
    moment of the training, each later one at a random moment after a resumed run's start-up.
    """
    startup, training = timing
    command = [sys.executable, "-m", "clarena", "train", *args, f"output_dir={run}"]
    landed = 0
    window = 0.8 * training
    for i in range(kills):
        proc = _start(command, run.parent)
        if i == 0:
            _wait_for_config(proc, run)
            time.sleep(rng.uniform(0.0, window))
            while proc.poll() == 0 and window > 0.05:
                # the run outran the reference's timing (a quieter machine): start afresh and
                # draw the kill from a window half as long, so that one kill lands
                shutil.rmtree(run)
                window /= 2
                proc = _start(command, run.parent)
                _wait_for_config(proc, run)
                time.sleep(rng.uniform(0.0, window))
        else:
            time.sleep(startup + rng.uniform(0.0, 0.5 * training))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            landed += 1
        code = proc.wait()
        if code == 0:
            return landed
        assert code == -signal.SIGKILL, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        command = [sys.executable, "-m", "clarena", "train", f"resume={run}"]
    done = subprocess.run(command, cwd=run.parent, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return landed


CASES: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("finetuning", "TIL", "split_digits", ()),
    ("ewc", "TIL", "split_digits", ()),
    ("er", "CIL", "split_digits", ()),
    ("derpp", "CIL", "split_digits", ()),
    # one Adam across the tasks: its moments and step count travel in the checkpoints
    ("lwf", "CIL", "split_digits", ("+cl_algorithm.keep_optimizer_state=true",)),
    ("er", "CIL", "split_fmnist", ()),  # real Fashion-MNIST (Debian's dataset-fashion-mnist)
]


@pytest.mark.parametrize(("algorithm", "scenario", "dataset", "extra"), CASES)
def test_sigkill_at_random_moments_resumes_bit_identically(
    algorithm: str, scenario: str, dataset: str, extra: tuple[str, ...], tmp_path: Path
) -> None:
    if dataset == "split_fmnist" and not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("needs Debian's dataset-fashion-mnist")
    args = [f"cl_algorithm={algorithm}", f"scenario={scenario}", f"cl_dataset={dataset}"]
    args += [*STEP_BUDGET, "cl_dataset.num_tasks=3", *extra]
    reference = tmp_path / "reference"
    command = [sys.executable, "-m", "clarena", "train", *args, f"output_dir={reference}"]
    timing = timed_run(command, reference)
    rng = random.Random(f"{algorithm}-{scenario}-{dataset}")
    landed = run_with_random_kills(args, tmp_path / "killed", kills=2, rng=rng, timing=timing)
    assert landed >= 1  # at least one kill hit a running process
    assert_identical(tmp_path / "killed", reference)


ER_ARGS = ("cl_algorithm=er", "scenario=CIL", *STEP_BUDGET, "cl_dataset.num_tasks=2")


@pytest.fixture(scope="module")
def er_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted two-task ER run."""
    tmp = tmp_path_factory.mktemp("er_reference")
    proc = clarena("train", *ER_ARGS, f"output_dir={tmp / 'run'}", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return tmp / "run"


@pytest.mark.parametrize("step", [3, 8, 9, 16, 20])
def test_kill_at_exact_steps_of_a_step_budget_resumes_bit_identically(
    step: int, er_reference: Path, tmp_path: Path
) -> None:
    """Kills mid-epoch, at an epoch's last step (8, 16), after one (9), at the budget's end."""
    run = tmp_path / "killed"
    kill = {"CLARENA_KILL_AT": f"task:2:step:{step}"}
    killed = clarena("train", *ER_ARGS, f"output_dir={run}", cwd=tmp_path, env=kill)
    assert killed.returncode == -signal.SIGKILL
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_identical(run, er_reference)


# The within-task checkpoint every 5 steps: inside epochs (8 batches each here) and inside
# logging intervals (every 4 steps), so a resume restores the epoch position, the loss terms
# recorded since the last write and A-GEM's logged flag.
STEP_CHECKPOINTS = ("trainer.checkpoint_every_n_steps=5", "trainer.log_every_n_steps=4")
CASES.append(("agem", "CIL", "split_digits", STEP_CHECKPOINTS))


def _step_args(algorithm: str) -> tuple[str, ...]:
    return (f"cl_algorithm={algorithm}", "scenario=CIL", *STEP_BUDGET, "cl_dataset.num_tasks=2")


@pytest.fixture(scope="module")
def step_references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Uninterrupted two-task ER and A-GEM runs with step-interval checkpoints."""
    runs = {}
    for algorithm in ("er", "agem"):
        tmp = tmp_path_factory.mktemp(f"{algorithm}_steps")
        args = (*_step_args(algorithm), *STEP_CHECKPOINTS)
        proc = clarena("train", *args, f"output_dir={tmp / 'run'}", cwd=tmp)
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[algorithm] = tmp / "run"
    return runs


@pytest.mark.parametrize("algorithm", ["er", "agem"])
@pytest.mark.parametrize("step", [7, 11, 16])
def test_a_resume_from_inside_an_epoch_is_bit_identical_logs_included(
    algorithm: str, step: int, step_references: dict[str, Path], tmp_path: Path
) -> None:
    """Killed 2, 1 and 1 steps after a checkpoint at steps 5, 10 and 15 of task 2 (batches 5, 2
    and 7 of their epochs): the run continues from there, not from the task's start."""
    run = tmp_path / "killed"
    args = (*_step_args(algorithm), *STEP_CHECKPOINTS)
    kill = {"CLARENA_KILL_AT": f"task:2:step:{step}"}
    killed = clarena("train", *args, f"output_dir={run}", cwd=tmp_path, env=kill)
    assert killed.returncode == -signal.SIGKILL
    state = torch.load(run / "checkpoints" / "within_task" / "last.ckpt", weights_only=True)
    assert state["global_step"] == step - step % 5
    assert state["batches_done"] == (step - step % 5) % 8
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "continuing task 2 from" in (run / "train.log").read_text()
    reference = step_references[algorithm]
    assert_identical(run, reference)
    logs = "lightning_logs/metrics.csv"
    assert (run / logs).read_text() == (reference / logs).read_text()


# The within-task checkpoint by time, every 6 ms of training (a few steps): where it lands
# depends on the machine's speed, so a kill comes at some distance after one, before the next.
TIME_CHECKPOINTS = ("trainer.checkpoint_every_minutes=0.0001", "trainer.log_every_n_steps=4")


@pytest.mark.parametrize("step", [13, 19])
def test_a_kill_between_two_time_based_checkpoints_resumes_bit_identically(
    step: int, er_reference: Path, tmp_path: Path
) -> None:
    run = tmp_path / "killed"
    kill = {"CLARENA_KILL_AT": f"task:2:step:{step}"}
    args = (*ER_ARGS, *TIME_CHECKPOINTS)
    killed = clarena("train", *args, f"output_dir={run}", cwd=tmp_path, env=kill)
    assert killed.returncode == -signal.SIGKILL
    state = torch.load(run / "checkpoints" / "within_task" / "last.ckpt", weights_only=True)
    assert state["task_id"] == 2 and 0 < state["global_step"] < step
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "continuing task 2 from" in (run / "train.log").read_text()
    assert_identical(run, er_reference)


BF16 = (*ER_ARGS, "trainer.precision=bf16-mixed", "trainer.checkpoint_every_n_steps=5")


def test_bf16_mixed_on_the_cpu_runs_and_resumes_bit_identically(
    er_reference: Path, tmp_path: Path
) -> None:
    reference = tmp_path / "reference"
    done = clarena("train", *BF16, f"output_dir={reference}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    # autocast ran: bfloat16 matrix products round differently from the float32 run's
    weights = "/cl_state/backbone/net.1.weight"
    got, fp32 = final_state(reference), final_state(er_reference)
    assert not torch.equal(got[weights], fp32[weights])  # type: ignore[arg-type]
    run = tmp_path / "killed"
    kill = {"CLARENA_KILL_AT": "task:2:step:13"}
    killed = clarena("train", *BF16, f"output_dir={run}", cwd=tmp_path, env=kill)
    assert killed.returncode == -signal.SIGKILL
    resumed = clarena("train", f"resume={run}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "continuing task 2 from" in (run / "train.log").read_text()
    assert_identical(run, reference)

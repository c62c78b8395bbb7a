"""The configs are found from an installed wheel and from the editable install alike."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _python(code_or_args: list[str], cwd: Path, pythonpath: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLARENA_KILL_AT")}
    env["OMP_NUM_THREADS"] = "1"
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(
        [sys.executable, *code_or_args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_a_wheel_ships_the_configs_and_runs_from_another_folder(tmp_path: Path) -> None:
    dist, site, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # without build isolation where setuptools and wheel are at hand (no download needed)
    local = all(importlib.util.find_spec(m) for m in ("setuptools", "wheel"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         *(["--no-build-isolation"] if local else []), "-w", str(dist), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = dist.glob("clarena-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        check=True, capture_output=True,
    )  # fmt: skip
    where = _python(["-c", "import clarena; print(clarena.__file__)"], elsewhere, str(site))
    assert where.strip().startswith(str(site))
    listed = _python(["-m", "clarena", "list", "experiment"], elsewhere, str(site))
    assert "vdv2022_lwf_til" in listed and "bc_update_fmnist" in listed
    out = tmp_path / "run"
    _python(
        ["-m", "clarena", "train", "cl_dataset.num_tasks=2", "trainer.max_epochs=1",
         "trainer.enable_progress_bar=false", "logger=none", f"output_dir={out}"],
        elsewhere, str(site),
    )  # fmt: skip
    assert (out / "results" / "accuracy_matrix.csv").is_file()
    assert (out / "train.log").is_file()  # the job_logging config shipped in hydra/job_logging/


def test_the_editable_install_finds_the_configs_from_another_folder(tmp_path: Path) -> None:
    code = "import clarena.configs as c; print(c.__file__)"
    assert _python(["-c", code], tmp_path, None).strip().startswith(str(ROOT))
    listed = _python(["-m", "clarena", "list", "experiment"], tmp_path, None)
    assert "vdv2022_ewc_cil" in listed

"""A real run says which run it is and what produced it; `clarena eval` prints no banners.

One short run of `clarena train` (subprocess, two tasks of the 8×8 digits) is shared by the tests:
its `metrics.json` holds the identity and provenance keys (the git commit is the checkout's HEAD
when clarena runs from one), `clarena report` titles the page with the run's identity, and
`clarena eval` prints the summary without Lightning's banners (which `--verbose` brings back).
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from test_train_support import clarena

import clarena as package
from clarena.metrics.provenance import PROVENANCE_KEYS, cpu_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(package.__file__).resolve().parents[1]
IN_CHECKOUT = (ROOT / ".git").exists() and (ROOT / "pyproject.toml").is_file()
ARGS = (
    "experiment_name=identity_check",
    "cl_algorithm=finetuning",
    "scenario=CIL",
    "seed=4",
    "cl_dataset.num_tasks=2",
    "trainer=debug",
    "logger=none",
)
IDENTITY = "identity_check · Finetuning · Split digits 8×8 (2 tasks) · CIL · seed 4"
BANNERS = re.compile(
    r"GPU available|TPU available|HPU available|litlogger|💡|Trainer\.fit. stopped|"
    r"deprecat|LeafSpec|absl|oneDNN|TF_ENABLE",
    re.IGNORECASE,
)


def _head() -> str | None:
    if not IN_CHECKOUT:
        return None
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None  # None: git refuses this tree


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set]:
    tmp = tmp_path_factory.mktemp("identity")
    before = _head()
    proc = clarena("train", *ARGS, f"output_dir={tmp / 'run'}", cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "run", {before, _head()}  # other commits may land while the run runs


def test_metrics_json_names_the_run_and_holds_its_provenance(run: tuple[Path, set]) -> None:
    run_dir, heads = run
    data = json.loads((run_dir / "results" / "metrics.json").read_text())
    assert data["run"] == {
        "experiment": "identity_check",
        "algorithm": "Finetuning",
        "dataset": "Split digits 8×8 (2 tasks)",
        "scenario": "CIL",
        "seed": 4,
    }
    prov = data["provenance"]
    assert sorted(prov) == sorted(PROVENANCE_KEYS)
    assert prov["clarena_version"] == package.__version__
    if IN_CHECKOUT and None not in heads:
        assert prov["git_commit"] in heads and re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"])
        assert isinstance(prov["git_dirty"], bool)
    elif not IN_CHECKOUT:
        assert prov["git_commit"] is None and prov["git_dirty"] is None
    assert prov["python"] == platform.python_version()
    for dist in ("torch", "lightning", "hydra-core", "omegaconf", "scikit-learn"):
        assert prov["libraries"][dist] == importlib.metadata.version(dist), dist
    assert prov["device"] == cpu_model()  # trainer=debug runs on the CPU
    times = prov["wall_time_per_task_s"]
    assert len(times) == 2 and all(t > 0 for t in times)
    assert prov["wall_time_total_s"] == pytest.approx(sum(times))
    expected = shlex.join(["python", "-m", "clarena", "train", *ARGS])
    assert prov["command_line"].startswith(expected + " output_dir=")
    assert data["class_names"] is None  # the 8×8 digits have no names beyond their digits


def test_the_report_and_its_plots_are_titled_with_the_run(
    run: tuple[Path, set], tmp_path: Path
) -> None:
    run_dir, _ = run
    proc = clarena("report", str(run_dir), "-o", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "report.html").read_text()
    assert f"<title>{IDENTITY} — " in page
    assert f"<h1>{IDENTITY}</h1>" in page
    assert "<h2>Provenance</h2>" in page and "python -m clarena train" in page


def test_eval_prints_no_lightning_banners_unless_verbose(run: tuple[Path, set]) -> None:
    run_dir, _ = run
    quiet = clarena("eval", str(run_dir), "-o", str(run_dir / "eval_quiet"), cwd=run_dir)
    assert quiet.returncode == 0, quiet.stderr
    lines = (quiet.stdout + quiet.stderr).splitlines()
    assert [line for line in lines if BANNERS.search(line)] == []
    assert "identical to the accuracy matrix saved by training" in quiet.stdout
    loud = clarena("eval", str(run_dir), "-o", str(run_dir / "eval_loud"), "--verbose", cwd=run_dir)
    assert loud.returncode == 0, loud.stderr
    assert "identical to the accuracy matrix saved by training" in loud.stdout
    # the pattern does catch Lightning's banners (Fabric's loop prints none on the CPU)
    assert BANNERS.search("GPU available: False (cuda), used: False")

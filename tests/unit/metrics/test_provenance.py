"""Run identity, provenance and class names in `metrics.json`; escaping of the run report."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clarena import __version__
from clarena.cl_datasets import SplitCLDataset
from clarena.metrics import CLResults
from clarena.metrics.class_names import FASHION_MNIST
from clarena.metrics.provenance import (
    PROVENANCE_KEYS,
    command_line,
    git_state,
    identity_line,
    label_names,
    label_names_from_config,
    run_identity,
)
from clarena.reports.html import run_page
from clarena.reports.writers import json_safe, write_results

T = torch.tensor
CONFIG = {
    "experiment_name": "fmnist_check",
    "scenario": "CIL",
    "seed": 3,
    "cl_algorithm": {"_target_": "clarena.cl_algorithms.EWC", "ewc_factor": 10.0},
    "cl_dataset": {
        "_target_": "clarena.cl_datasets.SplitCLDataset",
        "source": "fashion_mnist",
        "scenario": "CIL",
        "data_root": "/nonexistent/never/read",
        "seed": 3,
        "num_tasks": 5,
        "classes_per_task": 2,
        "class_order": None,
        "shuffle_classes": True,
    },
    "trainer": {"accelerator": "cpu"},
}


def two_tasks() -> CLResults:
    results = CLResults("CIL")
    results.add(1, 1, T([0, 1, 1, 1]), T([0, 1, 0, 1]))
    results.add(2, 1, T([0, 2, 1, 1]), T([0, 1, 0, 1]))
    results.add(2, 2, T([2, 3, 3, 3]), T([2, 3, 2, 3]))
    return results


def test_the_identity_of_a_run_comes_from_its_config() -> None:
    identity = run_identity(CONFIG)
    assert identity == {
        "experiment": "fmnist_check",
        "algorithm": "EWC",
        "dataset": "Split Fashion-MNIST (5 tasks)",
        "scenario": "CIL",
        "seed": 3,
    }
    assert (
        identity_line(identity)
        == "fmnist_check · EWC · Split Fashion-MNIST (5 tasks) · CIL · seed 3"
    )
    assert identity_line(run_identity(None), "TIL") == "? · ? · ? · TIL · seed ?"


def test_metrics_json_holds_identity_provenance_and_task_times(tmp_path: Path) -> None:
    results = two_tasks()
    results.set_task_time(1, 2.5)
    results.set_task_time(2, 1.25)
    write_results(results.record(CONFIG), tmp_path)
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["run"] == run_identity(CONFIG)
    prov = data["provenance"]
    assert sorted(prov) == sorted(PROVENANCE_KEYS)
    assert prov["clarena_version"] == __version__
    assert prov["python"] == platform.python_version()
    for dist in ("torch", "lightning", "hydra-core"):
        assert prov["libraries"][dist] == importlib.metadata.version(dist)
    assert prov["device"] == prov["cpu"] and prov["cpu"]  # trainer.accelerator: cpu
    assert prov["wall_time_per_task_s"] == [2.5, 1.25]
    assert prov["wall_time_total_s"] == 3.75
    assert prov["wall_time_measured_by"] == "task loop"
    # this process's own command (`python -m pytest ...`, or an xdist worker's `python -u -c ...`)
    assert prov["command_line"] == shlex.join(["python", *sys.orig_argv[1:]])
    written = datetime.datetime.fromisoformat(prov["written_at"])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - written).total_seconds()) < 120


def test_task_times_default_to_the_time_between_tests_and_survive_a_resume(tmp_path) -> None:
    results = two_tasks()
    measured = results.task_times
    assert sorted(measured) == [1, 2] and all(s >= 0 for s in measured.values())
    results.set_task_time(2, 7.0)
    torch.save({"m": results.state_dict()}, tmp_path / "ckpt.pt")
    resumed = CLResults()
    resumed.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["m"])
    assert resumed.task_times == {1: measured[1], 2: 7.0}
    write_results(resumed.record(), tmp_path / "out")
    prov = json.loads((tmp_path / "out" / "metrics.json").read_text())["provenance"]
    assert prov["wall_time_per_task_s"] == [measured[1], 7.0]
    assert prov["wall_time_measured_by"].startswith("task loop (tasks 2)")
    with pytest.raises(ValueError, match="finite number >= 0"):
        resumed.set_task_time(3, float("nan"))


def test_the_command_line_reads_as_typed() -> None:
    assert command_line(["/venv/bin/python", "/venv/bin/clarena", "train", "seed=2", "a b"]) == (
        "clarena train seed=2 'a b'"
    )
    assert command_line(["/usr/bin/python3.11", "-m", "clarena", "eval", "run"]) == (
        "python -m clarena eval run"
    )


def _git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_git_state_is_the_checkout_clarena_runs_from(tmp_path: Path) -> None:
    package = tmp_path / "clarena"
    package.mkdir()
    (package / "__init__.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert git_state(package) == (head, False)
    (package / "__init__.py").write_text("x = 2\n")
    assert git_state(package) == (head, True)
    (package / "sub").mkdir()
    assert git_state(package / "sub") == (None, None)  # not the top of the work tree
    assert git_state(tmp_path.parent) == (None, None)


def test_label_names_follow_the_task_split() -> None:
    cil = SplitCLDataset("fashion_mnist", "CIL", num_tasks=5, seed=3, shuffle_classes=True)
    assert cil.class_order != list(range(10))  # the shuffle is part of what is checked
    assert label_names(cil) == [FASHION_MNIST[c] for c in cil.class_order]
    assert label_names_from_config(CONFIG) == label_names(cil)
    til = label_names(SplitCLDataset("fashion_mnist", "TIL", num_tasks=5))
    assert til == [
        "T-shirt/top | Pullover | Coat | Shirt | Bag",
        "Trouser | Dress | Sandal | Sneaker | Ankle boot",
    ]
    data_il = {
        "_target_": "clarena.cl_datasets.DataIncrementalCLDataset",
        "source": "fashion_mnist",
        "scenario": "DataIL",
        "num_tasks": 5,
    }
    assert label_names_from_config({"cl_dataset": data_il}) == list(FASHION_MNIST)
    digits = {**CONFIG["cl_dataset"], "source": "digits"}
    assert label_names_from_config({"cl_dataset": digits}) is None
    assert (
        label_names_from_config({"cl_dataset": {"_target_": "my.Data", "source": "cifar10"}})
        is None
    )


def test_per_class_tables_of_the_report_use_the_class_names(tmp_path: Path) -> None:
    results = two_tasks()
    write_results(results.record(CONFIG), tmp_path)
    data = json_safe(json.loads((tmp_path / "metrics.json").read_text()))
    page = run_page(data, {}, "run")
    names = label_names_from_config(CONFIG)
    assert names is not None
    for c in range(4):
        assert f"<th>{c}: {names[c]}</th>" in page.replace("&#x27;", "'")
    assert "<h1>fmnist_check · EWC · Split Fashion-MNIST (5 tasks) · CIL · seed 3</h1>" in page
    assert (
        "<title>fmnist_check · EWC · Split Fashion-MNIST (5 tasks) · CIL · seed 3 — run</title>"
        in page
    )


def test_every_value_of_metrics_json_is_escaped_in_the_report(tmp_path: Path) -> None:
    payload = "<script>alert(1)</script>"
    results = two_tasks()
    config = {**CONFIG, "experiment_name": payload}
    write_results(results.record(config), tmp_path)
    data = json_safe(json.loads((tmp_path / "metrics.json").read_text()))
    data["num_tasks"] = payload
    data["scenario"] = payload
    data["clarena_version"] = payload
    data["class_names"] = [payload] * 4
    data["provenance"]["command_line"] = payload
    data["provenance"]["libraries"] = {payload: payload}
    data["compatibility"][-1]["new_after_task"] = payload
    page = run_page(data, {}, payload)
    assert "<script" not in page.lower()
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10


def test_the_libraries_recorded_do_not_depend_on_what_the_process_imported() -> None:
    """A resumed run imports less than a fresh one; the record is what is installed."""
    code = (
        "import sys, json; from clarena.metrics.provenance import library_versions; "
        "before = library_versions(); import sklearn, matplotlib; "
        "print(json.dumps([before, library_versions()]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout)
    assert before == after
    assert before["scikit-learn"] == importlib.metadata.version("scikit-learn")
    assert before["matplotlib"] == importlib.metadata.version("matplotlib")

"""`clarena report` over a folder of runs: mean ± standard error per method and scenario."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

from clarena.commands import report
from clarena.metrics.study import mean_and_standard_error


def _run(
    folder: Path,
    target: str,
    seed: int,
    acc: float,
    forgetting: float,
    bwt: float,
    page: bool = True,
    **config: object,
) -> Path:
    """A finished 2-task CIL run whose final accuracies are (acc + bwt, acc - bwt); with its page
    `results/report.html` already written when `page` (as `clarena train` leaves it)."""
    results = folder / "results"
    results.mkdir(parents=True)
    first = acc + bwt  # a21; a11 = a21 + forgetting
    matrix = [[first + forgetting, None], [first, acc - bwt]]
    data = {
        "format_version": 1,
        "scenario": "CIL",
        "num_tasks": 2,
        "accuracy_matrix": matrix,
        "average_accuracy_per_task": [first + forgetting, acc],
        "summary": {
            "average_accuracy": acc,
            "backward_transfer": bwt,
            "forgetting": forgetting,
            "forward_transfer": None,
        },
        "compatibility": [],
        "config": {
            "seed": seed,
            "scenario": "CIL",
            "cl_algorithm": {"_target_": target},
            "cl_dataset": {"source": "mnist"},
            **config,
        },
    }
    (results / "metrics.json").write_text(json.dumps(data))
    if page:
        (results / "report.html").write_text("<!DOCTYPE html><title>run</title>")
    return folder


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """2 methods × 2 seeds: EWC as a Hydra sweep (0/, 1/), ER as two separate runs."""
    root = tmp_path / "study"
    _run(root / "sweep_ewc" / "0", "clarena.cl_algorithms.EWC", 2, 0.80, 0.10, -0.10)
    _run(root / "sweep_ewc" / "1", "clarena.cl_algorithms.EWC", 3, 0.90, 0.20, -0.20)
    _run(root / "er_seed2", "clarena.cl_algorithms.ER", 2, 0.95, 0.04, -0.04, page=False)
    _run(root / "er_seed3", "clarena.cl_algorithms.ER", 3, 0.91, 0.00, 0.00)
    return root


def test_mean_and_standard_error_by_hand() -> None:
    # mean 2, s² = (1 + 0 + 1) / 2 = 1, SE = 1 / √3
    e = mean_and_standard_error([1.0, 2.0, None, 3.0])
    assert (e.mean, e.n) == (2.0, 3) and e.standard_error == pytest.approx(1 / math.sqrt(3))
    single = mean_and_standard_error([0.5])
    assert (single.mean, single.standard_error, single.n) == (0.5, None, 1)
    assert mean_and_standard_error([None]).mean is None
    e = mean_and_standard_error([1.0, 2.0, 4.0])
    # mean 7/3; sample variance ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3; SE = sqrt(7/9)
    assert (e.mean, e.n) == (pytest.approx(7 / 3), 3)
    assert e.standard_error == pytest.approx(math.sqrt(7 / 9))


def test_study_of_two_methods_and_two_seeds(study_dir: Path) -> None:
    assert report.main([str(study_dir)]) == 0
    out = study_dir / "study_report"
    rows = list(csv.DictReader((out / "study.csv").open()))
    assert [(r["method"], r["scenario"], r["num_seeds"], r["seeds"]) for r in rows] == [
        ("ER", "CIL", "2", "2 3"),
        ("EWC", "CIL", "2", "2 3"),
    ]
    er, ewc = rows
    # n = 2: mean (x1 + x2) / 2, SE = s / √2 = |x1 - x2| / 2
    expected = {
        "ER": {"average_accuracy": (0.93, 0.02), "forgetting": (0.02, 0.02)},
        "EWC": {"average_accuracy": (0.85, 0.05), "forgetting": (0.15, 0.05)},
    }
    expected["ER"]["backward_transfer"] = (-0.02, 0.02)
    expected["EWC"]["backward_transfer"] = (-0.15, 0.05)
    for row in (er, ewc):
        for key, (mean, se) in expected[row["method"]].items():
            assert float(row[f"{key}_mean"]) == pytest.approx(mean, abs=1e-12)
            assert float(row[f"{key}_se"]) == pytest.approx(se, abs=1e-12)
            assert row[f"{key}_n"] == "2"
    markdown = (out / "study.md").read_text()
    assert "| method | CIL |" in markdown
    assert "| ER | 93.00 ± 2.00 (n=2) |" in markdown
    assert "| EWC | 85.00 ± 5.00 (n=2) |" in markdown  # final average accuracy
    assert "| EWC | 15.00 ± 5.00 (n=2) |" in markdown  # forgetting
    assert "| EWC | -15.00 ± 5.00 (n=2) |" in markdown  # BWT
    assert "[seed 2](../sweep_ewc/0/results/report.html)" in markdown
    page = (out / "report.html").read_text()
    assert "<td>85.00 ± 5.00 (n=2)</td>" in page
    assert page.count('<a href="../') == 3
    # the run without a page got one in the study's own folder, which the link reaches; nothing
    # was written into the run
    assert "[seed 2](./runs/er_seed2.html)" in markdown
    assert "<!DOCTYPE html>" in (out / "runs" / "er_seed2.html").read_text()
    assert sorted(p.name for p in (study_dir / "er_seed2" / "results").iterdir()) == [
        "metrics.json"
    ]


def test_a_sweep_of_other_algorithms_is_a_study(study_dir: Path, tmp_path: Path) -> None:
    assert report.main([str(study_dir / "sweep_ewc"), "-o", str(tmp_path / "out")]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "study.csv").open()))
    assert [(r["method"], r["num_seeds"]) for r in rows] == [("EWC", "2")]
    # --study over one run: a study of one seed, no standard error
    assert report.main([str(study_dir / "er_seed3"), "--study", "-o", str(tmp_path / "one")]) == 0
    (row,) = csv.DictReader((tmp_path / "one" / "study.csv").open())
    assert row["average_accuracy_mean"] == "0.91" and row["average_accuracy_se"] == ""


def test_values_are_escaped_and_datasets_not_pooled(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    _run(root / "a", "x.<script>alert(1)</script>", 1, 0.5, 0.1, -0.1)
    other = _run(root / "b", "clarena.cl_algorithms.ER", 1, 0.6, 0.1, -0.1)
    data = json.loads((other / "results" / "metrics.json").read_text())
    data["config"]["cl_dataset"]["source"] = "fashion_mnist"
    (other / "results" / "metrics.json").write_text(json.dumps(data))
    assert report.main([str(root), "--study"]) == 0
    page = (root / "study_report" / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; (mnist)" in page
    assert "ER (fashion_mnist)" in page


def test_a_folder_without_runs_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    assert report.main([str(tmp_path), "--study"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no finished run under" in err


def test_a_run_still_in_progress_is_left_out_and_named(study_dir: Path) -> None:
    """Results are written after every task: a run that trained 2 of its 5 tasks would count its
    accuracy after task 2 as final. It is skipped, and the page says why."""
    unfinished = _run(study_dir / "er_seed4", "clarena.cl_algorithms.ER", 4, 0.99, 0.0, 0.0)
    data = json.loads((unfinished / "results" / "metrics.json").read_text())
    data["config"]["cl_dataset"]["num_tasks"] = 5
    (unfinished / "results" / "metrics.json").write_text(json.dumps(data))
    assert report.main([str(study_dir), "--study"]) == 0
    rows = list(csv.DictReader((study_dir / "study_report" / "study.csv").open()))
    assert {r["method"]: r["num_seeds"] for r in rows} == {"EWC": "2", "ER": "2"}
    page = (study_dir / "study_report" / "report.html").read_text()
    assert "unfinished: 2 of 5 tasks trained" in page


def _rows(out: Path) -> list[tuple[str, str, str, str, str]]:
    rows = csv.DictReader((out / "study.csv").open())
    keys = ("method", "setting", "num_seeds", "seeds", "repeated_seeds")
    return [tuple(r[k] for k in keys) for r in rows]  # type: ignore[misc]


def test_two_settings_are_two_rows_and_a_repeated_seed_counts_once(tmp_path: Path) -> None:
    """Issue 37 item 12: runs that differ in distillation_factor were pooled into one cell, and a
    seed run twice counted twice. Replicates differ only in seed and paths."""
    root = tmp_path / "runs"
    lwf = "clarena.cl_algorithms.LwF"

    def algo(factor: float) -> dict[str, object]:
        return {"_target_": lwf, "distillation_factor": factor, "temperature": 2.0}

    for name, seed, acc, factor in [
        ("a1", 1, 0.80, 1.0),
        ("a2", 2, 0.90, 1.0),
        ("a2_again", 2, 0.70, 1.0),  # seed 2 repeated: counted once (the first in path order)
        ("b1", 1, 0.60, 0.5),
    ]:
        run = _run(root / name, lwf, seed, acc, 0.0, 0.0, cl_algorithm=algo(factor))
        data = json.loads((run / "results" / "metrics.json").read_text())
        data["config"]["output_dir"] = str(run)  # paths differ between replicates
        data["config"]["experiment_name"] = name
        (run / "results" / "metrics.json").write_text(json.dumps(data))
    assert report.main([str(root), "--study"]) == 0
    out = root / "study_report"
    assert _rows(out) == [
        ("LwF", "distillation_factor=0.5", "1", "1", ""),
        ("LwF", "distillation_factor=1.0", "2", "1 2", "2"),
    ]
    (_, counted) = csv.DictReader((out / "study.csv").open())
    assert float(counted["average_accuracy_mean"]) == pytest.approx(0.85, abs=1e-12)
    assert float(counted["average_accuracy_se"]) == pytest.approx(0.05, abs=1e-12)
    page = (out / "report.html").read_text()
    assert "<td>LwF · distillation_factor=0.5</td>" in page.replace(' class="text"', "")
    assert f"seed 2 ({root / 'a2'}, {root / 'a2_again'})" in page
    assert "counted once" in page


def test_compositions_are_named_by_terms_and_not_pooled(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    composed = "clarena.cl_algorithms.Composed"
    ce = {"_target_": "clarena.cl_algorithms.terms.CrossEntropy"}
    ewc = {"_target_": "clarena.cl_algorithms.terms.ParameterChange", "importance": "ewc"}
    dist = {"_target_": "clarena.cl_algorithms.terms.Distillation"}
    for name, terms, factor in [
        ("ewc_lwf", {"ce": ce, "ewc": ewc, "distillation": dist}, None),
        ("lwf_bc_1", {"ce": ce, "distillation": dist}, 1.0),
        ("lwf_bc_2", {"ce": ce, "distillation": dist}, 2.0),
    ]:
        algo: dict[str, object] = {"_target_": composed, "terms": terms, "buffer_seed": 7}
        if factor is not None:
            algo["terms"] = {**terms, "distillation": {**dist, "factor": factor}}
        _run(root / name, composed, 1, 0.5, 0.0, 0.0, cl_algorithm=algo)
    assert report.main([str(root), "--study"]) == 0
    assert _rows(root / "study_report") == [
        ("Composed(ce, distillation)", "factor=1.0", "1", "1", ""),
        ("Composed(ce, distillation)", "factor=2.0", "1", "1", ""),
        ("Composed(ce, ewc, distillation)", "", "1", "1", ""),
    ]


def test_a_run_folder_named_like_a_script_url_is_a_relative_link(tmp_path: Path) -> None:
    """Issue 37 item 5: a run folder `javascript:alert(1)` linked from a study written next to
    it became `href="javascript:alert(1)/…"`, a script URL."""
    root = tmp_path / "runs"
    _run(root / "javascript:alert(1)", "clarena.cl_algorithms.ER", 1, 0.5, 0.0, 0.0)
    _run(root / "x?y#z", "clarena.cl_algorithms.ER", 2, 0.5, 0.0, 0.0, page=False)
    assert report.main([str(root), "--study", "-o", str(root)]) == 0
    page = (root / "report.html").read_text()
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs == [
        "./javascript%3Aalert%281%29/results/report.html",
        "./runs/x_y_z.html",
    ]

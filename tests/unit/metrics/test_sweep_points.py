"""Reading a sweep's runs: algorithm kinds, λc, the compared pair, and Hydra's config fallback."""

from __future__ import annotations

import json
import math

import pytest
import torch

from clarena.metrics import CLResults
from clarena.metrics.sweep import algorithm_kind, load_metrics, sweep_point
from clarena.reports.sweep_plots import tradeoff_png
from clarena.reports.writers import write_results

T = torch.tensor


def write_run(results_dir, config=None, reference=False):
    results = CLResults("DataIL")
    labels = T([0, 1, 1, 0])
    if reference:  # the deployed model: right on points 0, 1, 2
        results.add_reference(1, T([0, 1, 1, 1]), labels)
    results.add(1, 1, T([0, 1, 0, 0]), labels)  # right on 0, 1, 3
    results.add(2, 1, T([0, 0, 1, 0]), labels)  # right on 0, 2, 3
    results.add(2, 2, labels, labels)
    write_results(results.record(config), results_dir)


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("clarena.cl_algorithms.BCNewError", "new_error"),
        ("clarena.cl_algorithms.StrictImitation", "strict_imitation"),
        ("my_lab.StrictImitationWithReplay", "strict_imitation"),
        ("clarena.cl_algorithms.LwF", "other"),
    ],
)
def test_algorithm_kind(target, kind):
    assert algorithm_kind(target) == kind


def test_point_of_the_last_update(tmp_path):
    config = {"cl_algorithm": {"_target_": "clarena.cl_algorithms.BCNewError", "lambda_c": 0.25}}
    write_run(tmp_path / "results", config)
    point = sweep_point("0", tmp_path, load_metrics(tmp_path / "results"))
    assert (point.algorithm, point.kind, point.lambda_c, point.label) == (
        "BCNewError",
        "new_error",
        0.25,
        "λc=0.25",
    )
    # model 1 -> 2 on task 1: both right on 0 and 3 of old right 0, 1, 3
    assert point.comparison == "consecutive"
    assert point.btc == pytest.approx(2 / 3) and point.accuracy == 0.75
    assert point.old_accuracy == 0.75 and point.bec == 0.0
    assert point.error_overlap == {"progress": 1, "common": 0, "regress": 1}
    assert point.negative_flips_per_class == [0, 1]


def test_point_prefers_the_user_supplied_old_model(tmp_path):
    write_run(tmp_path / "results", reference=True)
    point = sweep_point("0", tmp_path, load_metrics(tmp_path / "results"))
    # reference right on 0, 1, 2; final model right on 0, 2, 3 -> both right 2 of 3
    assert point.comparison == "reference" and point.btc == pytest.approx(2 / 3)
    assert point.kind == "other" and point.lambda_c is None and point.label == "0"


def test_config_falls_back_to_hydra_config_yaml(tmp_path):
    write_run(tmp_path / "results", config=None)
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(
        "seed: 1\ncl_algorithm:\n  _target_: clarena.cl_algorithms.StrictImitation\n"
        "  lambda_c: 0.5\n  buffer_seed: ${seed}\n"
    )
    point = sweep_point("3", tmp_path, load_metrics(tmp_path / "results"))
    assert (point.kind, point.lambda_c) == ("strict_imitation", 0.5)


def test_bad_metrics_files_are_refused(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"accuracy_matrix": [[1.0]]}))
    with pytest.raises(ValueError, match="not a clarena metrics file"):
        load_metrics(tmp_path)
    write_run(tmp_path)
    data = json.loads((tmp_path / "metrics.json").read_text())
    data["format_version"] = 99
    (tmp_path / "metrics.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="upgrade clarena"):
        load_metrics(tmp_path)
    with pytest.raises(ValueError, match="'btc' or 'bec'"):
        tradeoff_png([], "nfr")


def test_one_task_run_has_no_update_to_place(tmp_path):
    results = CLResults("TIL")
    results.add(1, 1, T([0, 1]), T([0, 1]))
    write_results(results.record(), tmp_path)
    point = sweep_point("0", tmp_path, load_metrics(tmp_path))
    assert point.comparison == "none" and point.btc is None and point.accuracy is None
    assert not math.isnan(point.average_accuracy)
    assert tradeoff_png([point], "btc").startswith(b"\x89PNG")

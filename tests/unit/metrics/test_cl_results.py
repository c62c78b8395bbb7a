"""CLResults: accuracy matrix, consecutive-model compatibility, resume, and the files it writes."""

from __future__ import annotations

import json
import math

import pytest
import torch

from clarena.metrics import CLResults
from clarena.reports.writers import write_results

T = torch.tensor
TARGETS = {1: T([0, 1, 0, 1]), 2: T([2, 3, 2, 3]), 3: T([4, 5, 4, 5])}
PREDS = {
    (1, 1): T([0, 1, 0, 0]),  # 3/4
    (2, 1): T([0, 0, 1, 1]),  # 2/4
    (2, 2): T([2, 3, 3, 3]),  # 3/4
    (3, 1): T([0, 1, 1, 1]),  # 3/4
    (3, 2): T([2, 2, 2, 2]),  # 2/4
    (3, 3): T([4, 5, 4, 5]),  # 4/4
}


def feed(results: CLResults, tasks: range) -> None:
    for t in tasks:
        for j in range(1, t + 1):
            results.add(after_task=t, test_task=j, preds=PREDS[(t, j)], targets=TARGETS[j])


def rows_by_key(results: CLResults) -> dict[tuple, dict]:
    return {
        (r["comparison"], r["old_after_task"], r["new_after_task"], r["test_task"]): r
        for r in results.compatibility()
    }


def test_accuracy_matrix_and_summary():
    results = CLResults("TIL")
    feed(results, range(1, 4))
    matrix = results.accuracy_matrix()
    assert matrix[0, 0] == 0.75 and math.isnan(matrix[0, 1]) and math.isnan(matrix[1, 2])
    assert matrix[1, :2].tolist() == [0.5, 0.75]
    assert matrix[2].tolist() == [0.75, 0.5, 1.0]
    summary = results.summary()
    assert summary["average_accuracy"] == pytest.approx(0.75)
    # ((0.75 - 0.75) + (0.5 - 0.75)) / 2
    assert summary["backward_transfer"] == pytest.approx(-0.125)
    # task 1: max(0.75, 0.5) - 0.75 = 0; task 2: 0.75 - 0.5 = 0.25
    assert summary["forgetting"] == pytest.approx(0.125)
    assert summary["forward_transfer"] is None
    results.set_reference_accuracy([0.5, 0.5, 0.5])
    # ((0.75 - 0.5) + (1.0 - 0.5)) / 2
    assert results.summary()["forward_transfer"] == pytest.approx(0.375)


def test_consecutive_compatibility_by_hand():
    results = CLResults("CIL")
    feed(results, range(1, 4))
    rows = rows_by_key(results)
    assert set(rows) == {
        ("consecutive", 1, 2, 1),
        ("consecutive", 1, 2, "all"),
        ("consecutive", 2, 3, 1),
        ("consecutive", 2, 3, 2),
        ("consecutive", 2, 3, "all"),
    }
    first = rows[("consecutive", 1, 2, 1)]
    # old [0,1,0,0] right at 0,1,2; new [0,0,1,1] right at 0,3
    assert (first["both_correct"], first["negative_flips"], first["positive_flips"]) == (1, 2, 1)
    assert first["btc"] == pytest.approx(1 / 3) and first["bec"] == 0.0
    assert first["nfr"] == 0.5 and first["pfr"] == 0.25
    assert first["negative_flips_per_class"] == [1, 1, 0, 0, 0, 0]
    pooled = rows[("consecutive", 2, 3, "all")]
    assert pooled["test_tasks"] == [1, 2]
    assert (pooled["total"], pooled["old_correct"], pooled["new_correct"]) == (8, 5, 5)
    assert pooled["btc"] == pytest.approx(3 / 5) and pooled["bec"] == pytest.approx(1 / 3)
    assert pooled["error_overlap"] == {"progress": 2, "common": 1, "regress": 2}
    assert pooled["negative_flips_per_class"] == [0, 0, 0, 2, 0, 0]
    assert pooled["old_accuracy"] == pytest.approx(5 / 8)


def test_reference_model_comparison():
    results = CLResults("DataIL")
    results.add_reference(1, T([0, 1, 0, 1]), TARGETS[1])  # the deployed model: all right
    feed(results, range(1, 3))
    rows = rows_by_key(results)
    first = rows[("reference", None, 1, 1)]
    assert (first["old_correct"], first["negative_flips"], first["btc"]) == (4, 1, 0.75)
    assert rows[("reference", None, 2, 1)]["btc"] == 0.5
    assert ("reference", None, 2, 2) not in rows  # no reference predictions on task 2


def test_task_aware_matrix_in_cil():
    results = CLResults("CIL")
    results.add(1, 1, T([0, 0, 0, 0]), TARGETS[1], preds_task_aware=T([0, 1, 0, 0]))
    assert results.accuracy_matrix().tolist() == [[0.5]]
    assert results.accuracy_matrix(task_aware=True).tolist() == [[0.75]]
    assert results.to_dict()["summary_task_aware"]["average_accuracy"] == 0.75


def test_resume_from_a_weights_only_checkpoint_gives_identical_results(tmp_path):
    straight = CLResults("CIL")
    feed(straight, range(1, 4))
    straight.add_reference(2, T([2, 3, 2, 2]), TARGETS[2])

    first_half = CLResults("CIL")
    feed(first_half, range(1, 3))
    first_half.add_reference(2, T([2, 3, 2, 2]), TARGETS[2])
    torch.save({"metrics": first_half.state_dict()}, tmp_path / "ckpt.pt")
    resumed = CLResults()
    resumed.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["metrics"])
    feed(resumed, range(3, 4))
    assert json.dumps(resumed.to_dict()) == json.dumps(straight.to_dict())


def test_bad_feeding_is_refused():
    results = CLResults()
    results.add(1, 1, PREDS[(1, 1)], TARGETS[1])
    with pytest.raises(ValueError, match="already added"):
        results.add(1, 1, PREDS[(1, 1)], TARGETS[1])
    with pytest.raises(ValueError, match="must not shuffle"):
        results.add(2, 1, PREDS[(2, 1)], TARGETS[1].flip(0))
    with pytest.raises(ValueError, match="tasks count from 1"):
        results.add(0, 1, PREDS[(1, 1)], TARGETS[1])
    with pytest.raises(ValueError, match="argmax"):
        results.add(2, 1, torch.zeros(4, 3), TARGETS[1])
    with pytest.raises(ValueError, match="differ in length"):
        results.add(2, 1, T([0, 1]), TARGETS[1])
    with pytest.raises(ValueError, match=r"fractions in \[0, 1\]"):
        results.set_reference_accuracy([50.0])
    with pytest.raises(ValueError, match="unsupported CLResults state format"):
        results.load_state_dict({"format_version": 99})


def test_write_produces_the_results_files(tmp_path):
    results = CLResults("CIL")
    for t in range(1, 4):
        for j in range(1, t + 1):
            aware = TARGETS[j]  # task-aware predictions: all right
            results.add(t, j, PREDS[(t, j)], TARGETS[j], preds_task_aware=aware)
    config = {"cl_algorithm": {"_target_": "clarena.cl_algorithms.LwF", "lambda_c": 0.5}}
    out = tmp_path / "run" / "results"
    write_results(results.record(config), out)
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "accuracy_matrix.csv",
        "accuracy_matrix.png",
        "accuracy_matrix_task_aware.csv",
        "accuracy_matrix_task_aware.png",
        "average_accuracy.png",
        "compatibility.csv",
        "flips.png",
        "metrics.json",
    ]  # and no temporary files left behind
    assert (out / "accuracy_matrix.csv").read_text() == (
        "after_training_task,average_accuracy,test_on_task_1,test_on_task_2,test_on_task_3\n"
        "1,0.75,0.75,,\n"
        "2,0.625,0.5,0.75,\n"
        "3,0.75,0.75,0.5,1.0\n"
    )
    lines = (out / "compatibility.csv").read_text().splitlines()
    assert lines[0] == (
        "comparison,old_after_task,new_after_task,test_task,total,old_correct,new_correct,"
        "both_correct,both_wrong,negative_flips,positive_flips,old_accuracy,new_accuracy,"
        "nfr,pfr,nfi,btc,bec"
    )
    assert lines[-1] == (
        "consecutive,2,3,all,8,5,5,3,1,2,2,0.625,0.625,0.25,0.25,0.6666666666666666,0.6,"
        "0.3333333333333333"
    )
    data = json.loads((out / "metrics.json").read_text())  # strict JSON: NaN became null
    assert data["accuracy_matrix"][0] == [0.75, None, None]
    assert data["config"] == config
    assert data["summary_task_aware"]["average_accuracy"] == 1.0
    assert (out / "flips.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Every algorithm × every scenario: supported pairs run two tasks, others are refused."""

from __future__ import annotations

import pytest
import torch
from cl_synthetic_stream import SyntheticStream, build_algorithm, run_tasks, test_predictions

from clarena.cl_algorithms import ALGORITHMS
from clarena.heads.heads import SCENARIOS

PAIRS = [(name, s) for name in ALGORITHMS for s in SCENARIOS]


@pytest.mark.parametrize(("name", "scenario"), PAIRS)
def test_supported_pairs_run_two_tasks_and_others_are_refused(name: str, scenario: str) -> None:
    cls = ALGORITHMS[name]
    if scenario not in cls.supported_scenarios:
        with pytest.raises(ValueError, match=rf"{cls.__name__} does not support scenario"):
            build_algorithm(name, scenario)
        return
    torch.manual_seed(0)
    algorithm = build_algorithm(name, scenario)
    stream = SyntheticStream(scenario)
    results = run_tasks(algorithm, stream, [1, 2])
    assert algorithm.task_id == 2
    assert algorithm.fit_device == torch.device("cpu")
    assert results.num_tasks == 2
    outputs = test_predictions(algorithm, dataloaders=stream.test_dataloader())
    assert sorted(outputs) == [1, 2]
    for t, out in outputs.items():
        assert torch.equal(out["preds"], results.predictions(2, t))
        n = len(stream.test_sets[t - 1])
        for key in ("preds", "preds_task_aware", "targets"):
            assert out[key].dtype == torch.int64 and out[key].device.type == "cpu"
            assert out[key].shape == (n,)
        assert torch.equal(out["targets"], stream.test_sets[t - 1].tensors[1])
        if scenario != "CIL":
            assert torch.equal(out["preds"], out["preds_task_aware"])
        start, end = algorithm.heads.class_range(t)
        assert ((out["preds_task_aware"] >= start) & (out["preds_task_aware"] < end)).all()

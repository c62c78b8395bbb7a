"""The composition example `docs/examples/lwf_with_bc.py` runs; its terms are the regularizers."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pytest
import torch
from cl_synthetic_stream import INPUT_SHAPE, SyntheticStream, run_tasks

from clarena.backbones import MLP
from clarena.cl_algorithms.regularizers import distillation_reg, new_error_dissonance
from clarena.heads import make_heads

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "lwf_with_bc.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("lwf_with_bc_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(example, scenario: str):
    backbone = MLP(input_shape=INPUT_SHAPE, hidden_dims=(16,))
    return example.LwFWithBC(
        backbone,
        make_heads(scenario, 16),
        functools.partial(torch.optim.SGD, lr=0.1),
        scenario,
        distillation_factor=0.5,
        temperature=3.0,
        lambda_c=2.0,
    )


def test_the_example_runs_on_the_digits(example) -> None:
    history = example.main(steps=40)
    assert len(history["accuracy"]) == 3 and history["negative_flip_rate"][0] == 0.0
    assert all(acc > 0.8 for acc in history["accuracy"]), history  # chance is 0.1
    assert all(0.0 <= nfr < 0.1 for nfr in history["negative_flip_rate"]), history


def test_the_composed_terms_are_the_regularizers(example) -> None:
    torch.manual_seed(0)
    algorithm = _build(example, "DIL")
    stream = SyntheticStream("DIL")
    run_tasks(algorithm, stream, [1], max_steps=3)
    stream.setup_task(2)
    algorithm.on_task_start(2, stream)
    x, y, t = next(iter(stream.train_dataloader()))
    terms = algorithm.loss_terms((x, y, t))
    with torch.no_grad():
        new, old = algorithm(x, t), algorithm.h1(x, t)
    assert set(terms) == {"ce", "distillation", "dissonance"}
    assert terms["distillation"].item() == pytest.approx(
        distillation_reg(new, old, 0.5, 3.0).item(), rel=1e-6
    )
    assert terms["dissonance"].item() == pytest.approx(
        new_error_dissonance(new, old, y, "cross_entropy", 2.0).item(), rel=1e-6
    )
    with pytest.raises(ValueError, match="LwFWithBC does not support scenario 'TIL'"):
        _build(example, "TIL")

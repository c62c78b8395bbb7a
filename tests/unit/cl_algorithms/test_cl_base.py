"""CLAlgorithm: scenario checks, task order, test outputs, optimizers, CL-state checkpoints."""

from __future__ import annotations

import functools

import pytest
import torch
from cl_synthetic_stream import (
    INPUT_SHAPE,
    SyntheticStream,
    build_algorithm,
    predict_batches,
    run_tasks,
)

from clarena.backbones import MLP
from clarena.cl_algorithms import ALGORITHMS, Finetuning
from clarena.heads import make_heads


def _parts(scenario: str):
    backbone = MLP(input_shape=INPUT_SHAPE, hidden_dims=(16,))
    return backbone, make_heads(scenario, 16), functools.partial(torch.optim.SGD, lr=0.1)


def test_unsupported_scenario_is_refused_with_one_line() -> None:
    class TILOnly(Finetuning):
        supported_scenarios = ("TIL", "DIL")

    with pytest.raises(ValueError) as info:
        TILOnly(*_parts("CIL"), "CIL")
    assert str(info.value) == "TILOnly does not support scenario 'CIL'; it supports TIL, DIL."
    TILOnly(*_parts("TIL"), "TIL")


def test_heads_of_another_scenario_and_bad_optimizer_are_refused() -> None:
    backbone, heads, optimizer = _parts("TIL")
    with pytest.raises(ValueError, match="heads were built for 'TIL' but the scenario is 'CIL'"):
        Finetuning(backbone, heads, optimizer, "CIL")
    with pytest.raises(ValueError, match="optimizer must be a factory"):
        Finetuning(backbone, heads, torch.optim.SGD(backbone.parameters(), lr=0.1), "TIL")


def test_tasks_run_in_order() -> None:
    algorithm = build_algorithm("finetuning", "TIL")
    stream = SyntheticStream("TIL")
    with pytest.raises(ValueError, match="expected task 1 next, got 2"):
        algorithm.on_task_start(2, stream)
    algorithm.on_task_start(1, stream)
    with pytest.raises(ValueError, match=r"on_task_end\(2\) but the current task is 1"):
        algorithm.on_task_end(2, stream)


def test_a_fresh_optimizer_each_task_over_the_current_parameters_only() -> None:
    algorithm = build_algorithm("lwf", "TIL")
    stream = SyntheticStream("TIL")
    run_tasks(algorithm, stream, [1], max_steps=2)
    stream.setup_task(2)
    algorithm.on_task_start(2, stream)
    first, second = algorithm.configure_optimizers(), algorithm.configure_optimizers()
    assert first is not second
    ids = {id(p) for group in first.param_groups for p in group["params"]}
    assert ids == {id(p) for p in [*algorithm.backbone.parameters(), *algorithm.heads.parameters()]}
    assert id(algorithm.heads.heads["2"].weight) in ids  # the new task's head is trained
    assert not ids & {id(p) for p in algorithm.h1.parameters()}
    assert "h1" not in dict(algorithm.named_children())  # not a submodule: not in state_dict


def test_cil_test_predictions_are_task_agnostic_and_task_aware() -> None:
    algorithm = build_algorithm("finetuning", "CIL")
    stream = SyntheticStream("CIL")
    for t in (1, 2):
        stream.setup_task(t)
        algorithm.on_task_start(t, stream)
    with torch.no_grad():  # make class 3 win everywhere, class 1 win among task 1's classes
        algorithm.heads.linear.weight.zero_()
        algorithm.heads.linear.bias.copy_(torch.tensor([0.0, 1.0, 0.5, 2.0]))
    batches = [(batch, 0) for loader in stream.test_dataloader() for batch in loader]
    out = predict_batches(algorithm, batches)
    assert sorted(out) == [1, 2]
    assert out[1]["preds"].unique().tolist() == [3]
    assert out[1]["preds_task_aware"].unique().tolist() == [1]
    assert out[2]["preds_task_aware"].unique().tolist() == [3]
    assert out[1]["targets"].tolist() == [0] * 8 + [1] * 8


def test_tasks_the_heads_do_not_know_yet_are_not_tested() -> None:
    algorithm = build_algorithm("finetuning", "TIL")
    stream = SyntheticStream("TIL")
    stream.setup_task(1)
    algorithm.on_task_start(1, stream)
    batches = []
    for t in (1, 2):  # a dataset testing every task (forward transfer) also serves task 2
        loader = torch.utils.data.DataLoader(stream.test_sets[t - 1], batch_size=5)
        batches += [(batch, t - 1) for batch in loader]
    assert sorted(predict_batches(algorithm, batches)) == [1]


SCENARIO_FOR = {name: "CIL" for name in ALGORITHMS} | {
    "ewc": "TIL",
    "strict_imitation": "DIL",
    "hat": "TIL",
    "elodi": "DIL",
    "bcwi": "DIL",
}


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_cl_state_survives_a_weights_only_checkpoint(name: str, tmp_path) -> None:
    scenario = SCENARIO_FOR[name]
    torch.manual_seed(0)
    algorithm = build_algorithm(name, scenario)
    stream = SyntheticStream(scenario, num_tasks=3)
    run_tasks(algorithm, stream, [1, 2], max_steps=3)
    torch.save(algorithm.cl_state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    restored = build_algorithm(name, scenario)
    restored.load_cl_state_dict(state)
    assert restored.task_id == 2
    x, _, t = next(iter(stream.train_dataloader()))
    assert torch.equal(restored(x, t), algorithm(x, t))
    if algorithm.h1 is not None:
        assert torch.equal(restored.h1(x, t), algorithm.h1(x, t))
    # both continue identically with task 3 (buffers, their random generators, Fisher, h1)
    for model in (algorithm, restored):
        torch.manual_seed(5)  # the new head's initialisation
        stream.setup_task(3, cumulative=model.cumulative_data)
        model.on_task_start(3, stream)
    batch = next(iter(stream.train_dataloader()))
    a, b = algorithm.loss_terms(batch), restored.loss_terms(batch)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="resume with the run's original config"):
        build_algorithm("finetuning", "TIL").load_cl_state_dict(state)


def test_lightning_checkpoints_carry_the_replay_buffer() -> None:
    er = build_algorithm("er", "DIL", buffer_size=10)
    stream = SyntheticStream("DIL")
    run_tasks(er, stream, [1], max_steps=2)
    checkpoint: dict = {}
    er.on_save_checkpoint(checkpoint)
    other = build_algorithm("er", "DIL", buffer_size=10)
    other.on_load_checkpoint(checkpoint)
    assert len(other.buffer) == len(er.buffer) == 10
    assert torch.equal(other.buffer.x, er.buffer.x)

"""The Avalanche plugins add our regularizers' terms; Avalanche benchmarks feed a `CLDataset`.

Avalanche is imported by the tests that use it, not when the module is collected: its import
(which also imports TensorFlow where that is installed) costs about 9 s of CPU, which every
collection of the suite, and every xdist worker, paid.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from clarena.backbones import MLP
from clarena.cl_algorithms import Finetuning
from clarena.cl_algorithms.regularizers import (
    BCNewErrorReg,
    DistillationReg,
    StrictImitationReg,
)
from clarena.heads import make_heads

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("avalanche") is None, reason="needs avalanche (clarena[avalanche])"
)


@pytest.fixture(scope="module")
def av() -> SimpleNamespace:
    """Avalanche's names and our plugins, imported on first use."""
    from avalanche.benchmarks import nc_benchmark, ni_benchmark
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin, SupervisedPlugin

    from clarena.integrations import avalanche as ours

    return SimpleNamespace(
        nc_benchmark=nc_benchmark,
        ni_benchmark=ni_benchmark,
        Naive=Naive,
        EvaluationPlugin=EvaluationPlugin,
        SupervisedPlugin=SupervisedPlugin,
        BCDissonancePlugin=ours.BCDissonancePlugin,
        DistillationPlugin=ours.DistillationPlugin,
        avalanche_to_cl_dataset=ours.avalanche_to_cl_dataset,
    )


def _constant_model(bias: list[float]) -> nn.Linear:
    """A model whose logits are `bias` whatever the input."""
    model = nn.Linear(2, len(bias))
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor(bias))
    return model


def _strategy(model: nn.Module, output: torch.Tensor, y: list[int], targets: list[int]):
    """The strategy attributes the plugins read."""
    return SimpleNamespace(
        model=model,
        mb_x=torch.zeros(output.shape[0], 2),
        mb_y=torch.tensor(y),
        mb_task_id=torch.zeros(output.shape[0], dtype=torch.int64),
        mb_output=output,
        loss=torch.tensor(0.25),
        experience=SimpleNamespace(dataset=SimpleNamespace(targets=targets)),
    )


def test_distillation_plugin_adds_the_regularizer_on_old_class_logits(av):
    plugin = av.DistillationPlugin(factor=0.5, distance="MSE")
    output = torch.tensor([[3.0, 2.0, 0.0]], requires_grad=True)
    strategy = _strategy(_constant_model([1.0, 2.0, 5.0]), output, [2], targets=[0, 1, 0])
    plugin.before_backward(strategy)  # first experience: nothing added
    assert plugin.last_penalty is None and strategy.loss.item() == 0.25
    plugin.after_training_exp(strategy)  # classes {0, 1} seen; teacher logits [1, 2, 5]
    with torch.no_grad():
        strategy.model.bias.fill_(9.0)  # the live model moves on; the frozen copy does not
    plugin.before_backward(strategy)
    # Columns 0, 1: 0.5 * ((3 - 1)^2 + (2 - 2)^2) / 2 = 1.0.
    assert plugin.last_penalty.item() == pytest.approx(1.0, abs=1e-7)
    assert strategy.loss.item() == pytest.approx(1.25, abs=1e-7)
    direct = DistillationReg(0.5, distance="MSE")(output[:, :2], torch.tensor([[1.0, 2.0]]))
    assert plugin.last_penalty.item() == direct.item()


def test_distillation_plugin_cross_entropy_value_and_no_teacher_gradient(av):
    plugin = av.DistillationPlugin(factor=1.0, temperature=1.0)
    live = _constant_model([3.0, 2.0, 0.0])
    strategy = _strategy(live, torch.zeros(1, 3), [0], targets=[1, 0])
    plugin.after_training_exp(strategy)
    strategy.mb_output = torch.tensor([[1.0, 2.0, 7.0]], requires_grad=True)
    plugin.before_backward(strategy)
    # Teacher [3, 2] -> q = softmax; student [1, 2] -> log p; R = -sum q log p.
    z = math.log(math.exp(1) + math.exp(2))
    q0 = math.exp(3) / (math.exp(3) + math.exp(2))
    expected = -(q0 * (1 - z) + (1 - q0) * (2 - z))
    assert plugin.last_penalty.item() == pytest.approx(expected, rel=1e-6)
    strategy.loss.backward()
    frozen = plugin.frozen_model
    assert frozen is not None and not frozen.training
    assert all(p.grad is None and not p.requires_grad for p in frozen.parameters())
    assert strategy.mb_output.grad is not None
    assert strategy.mb_output.grad[0, 2].item() == 0.0  # a new class's logit is not distilled


def test_bc_new_error_plugin_matches_the_regularizer(av):
    plugin = av.BCDissonancePlugin("cross_entropy", lambda_c=2.0)
    output = torch.tensor([[0.0, 1.0, 3.0], [2.0, 0.0, 0.0]], requires_grad=True)
    strategy = _strategy(_constant_model([1.0, 2.0, 5.0]), output, [2, 0], targets=[0, 2])
    plugin.before_backward(strategy)
    assert plugin.last_penalty is None
    plugin.after_training_exp(strategy)
    plugin.before_backward(strategy)
    # h1 predicts class 2: the support is sample 0 only; 2 * CE(row 0, 2) / 2.
    ce0 = -(3.0 - math.log(1 + math.e + math.exp(3)))
    assert plugin.last_penalty.item() == pytest.approx(ce0, rel=1e-6)
    h1 = torch.tensor([[1.0, 2.0, 5.0]]).expand(2, 3)
    direct = BCNewErrorReg("cross_entropy", 2.0)(output, h1, torch.tensor([2, 0]))
    assert plugin.last_penalty.item() == direct.item()
    assert strategy.loss.item() == pytest.approx(0.25 + ce0, rel=1e-6)


def test_bc_strict_imitation_plugin_matches_the_regularizer(av):
    plugin = av.BCDissonancePlugin("kl_div", 0.5, strict_imitation=True, temperature=2.0)
    output = torch.tensor([[0.0, 1.0, 3.0], [2.0, 0.0, 0.0]], requires_grad=True)
    strategy = _strategy(_constant_model([1.0, 2.0, 5.0]), output, [2, 2], targets=[0, 2])
    plugin.after_training_exp(strategy)
    plugin.before_backward(strategy)
    h1 = torch.tensor([[1.0, 2.0, 5.0]]).expand(2, 3)
    reg = StrictImitationReg("kl_div", 0.5, temperature=2.0)
    assert plugin.last_penalty.item() == reg(output, h1, torch.tensor([2, 2])).item()
    assert plugin.last_penalty.item() > 0


def test_bc_plugin_refuses_a_grown_classifier(av):
    plugin = av.BCDissonancePlugin()
    strategy = _strategy(_constant_model([1.0, 2.0]), torch.zeros(1, 3), [0], targets=[0])
    plugin.after_training_exp(strategy)
    with pytest.raises(ValueError, match="fixed width"):
        plugin.before_backward(strategy)


def _benchmark(av, n_train: int = 40, n_test: int = 20):
    """4 classes of 4x4 images whose pixels are multiples of 1/255; 2 experiences."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_train, 1, 4, 4), generator=g).float() / 255
    xt = torch.randint(0, 256, (n_test, 1, 4, 4), generator=g).float() / 255
    y, yt = torch.arange(n_train) % 4, torch.arange(n_test) % 4
    for i in range(n_train):  # make the classes learnable: a bright pixel per class
        x[i, 0, 0, int(y[i])] = 1.0
    train, test = TensorDataset(x, y), TensorDataset(xt, yt)
    return av.nc_benchmark(train, test, 2, task_labels=False, fixed_class_order=[2, 0, 3, 1]), x


@pytest.mark.filterwarnings("ignore:No loggers specified")
@pytest.mark.parametrize(("kind", "new_classes"), [("distillation", True), ("bc_new_error", False)])
def test_naive_strategy_trains_two_experiences_with_the_plugin(av, kind, new_classes):
    if kind == "distillation":
        plugin = av.DistillationPlugin()
    else:
        plugin = av.BCDissonancePlugin(lambda_c=1.0)
    torch.manual_seed(0)
    benchmark, x = _benchmark(av)
    if not new_classes:  # BC's model-update setting: new samples of the same classes
        y, xt = torch.arange(40) % 4, x[:20]
        benchmark = av.ni_benchmark(TensorDataset(x, y), TensorDataset(xt, y[:20]), 2, seed=0)
    penalties = []

    class Record(av.SupervisedPlugin):
        def before_backward(self, strategy, **kwargs):
            penalties.append(plugin.last_penalty)

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    strategy = av.Naive(
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_mb_size=10,
        train_epochs=5,
        eval_mb_size=20,
        plugins=[plugin, Record()],
        evaluator=av.EvaluationPlugin(loggers=[]),
    )
    strategy.train(benchmark.train_stream[0])
    assert penalties == [None] * 10  # nothing added in the first experience: 5 epochs x 2
    after_first = {k: v.clone() for k, v in model.state_dict().items()}
    frozen = plugin.frozen_model
    assert frozen is not model and not frozen.training
    assert all(torch.equal(frozen.state_dict()[k], v) for k, v in after_first.items())
    assert plugin.seen_classes == ({0, 2} if new_classes else {0, 1, 2, 3})
    strategy.train(benchmark.train_stream[1])
    added = penalties[10:]
    assert len(added) == 10 and all(p is not None and torch.isfinite(p) for p in added)
    assert max(p.item() for p in added) > 0
    assert any(not torch.equal(after_first[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in frozen.parameters())  # the teacher got no gradient
    assert plugin.seen_classes == {0, 1, 2, 3}
    assert isinstance(strategy.eval(benchmark.test_stream), dict)


def test_benchmark_adapter_tasks_counts_and_label_maps(av):
    benchmark, x = _benchmark(av)
    data = av.avalanche_to_cl_dataset(benchmark, "CIL", batch_size=8, val_fraction=0.0)
    assert data.num_tasks == 2 and data.input_shape == (1, 4, 4)
    assert data.task_classes() == [(0, 2), (1, 3)]  # the experiences' classes, increasing
    assert data.label_map(1) == {0: 0, 2: 1} and data.label_map(2) == {1: 2, 3: 3}
    assert [data.output_dim(1), data.output_dim(2)] == [2, 4]
    for t in (1, 2):
        rows, classes = data.task_samples(t, "train")
        assert len(rows) == 20 and len(data.task_samples(t, "test")[0]) == 10
        assert set(classes.tolist()) == set(data.classes_of_task(t))
    assert torch.equal(data.data.train_x.sort(0).values, (x * 255).round().byte().sort(0).values)
    data.setup_task(2)
    labels = torch.cat([y for _, y, _ in data.train_dataloader()])
    assert sorted(labels.tolist()) == [2] * 10 + [3] * 10
    til = av.avalanche_to_cl_dataset(benchmark, "TIL", val_fraction=0.0)
    assert til.label_map(2) == {1: 0, 3: 1} and til.output_dim(2) == 2


def test_benchmark_adapter_single_test_experience_and_errors(av):
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(24, 1, 2, 2, generator=g), torch.arange(24) % 3
    bench = av.ni_benchmark(TensorDataset(x, y), TensorDataset(x[:9], y[:9]), 2, seed=0)
    data = av.avalanche_to_cl_dataset(bench, "DataIL", val_fraction=0.0)
    assert data.num_tasks == 2 and data.task_classes() == [(0, 1, 2), (0, 1, 2)]
    assert [len(data.task_samples(t, "train")[0]) for t in (1, 2)] == [12, 12]
    assert [len(data.task_samples(t, "test")[0]) for t in (1, 2)] == [9, 9]
    assert data.label_map(2) == {0: 0, 1: 1, 2: 2} and data.output_dim(1) == 3
    with pytest.raises(ValueError, match="unknown scenario"):
        av.avalanche_to_cl_dataset(bench, "XIL")
    bad = av.ni_benchmark(TensorDataset(x * 4 - 2, y), TensorDataset(x[:9], y[:9]), 2, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        av.avalanche_to_cl_dataset(bad, "DataIL")


def test_clarena_finetuning_fits_one_task_of_an_avalanche_benchmark(av):
    torch.manual_seed(0)
    benchmark, _ = _benchmark(av)
    data = av.avalanche_to_cl_dataset(benchmark, "TIL", batch_size=10, val_fraction=0.1)
    model = Finetuning(
        MLP(input_shape=data.input_shape, hidden_dims=(8,)),
        make_heads("TIL", 8),
        functools.partial(torch.optim.SGD, lr=0.1),
        "TIL",
    )
    data.setup_task(1)
    model.on_task_start(1, data)
    import lightning.pytorch as pl

    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    assert trainer.state.finished and trainer.global_step == 2 * 2  # 18 samples, batches of 10
    model.on_task_end(1, data)

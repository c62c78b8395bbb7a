"""`Composed`: each term of the shipped YAML compositions equals its regularizer called directly
on the same tensors; h1 and the replay draw run once per step; the state resumes exactly; the
compositions of one shipped collector are the shipped algorithm step for step."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from cl_synthetic_stream import INPUT_SHAPE, SyntheticStream, make_trainer, run_tasks
from hydra.utils import instantiate
from omegaconf import OmegaConf

import clarena.configs
from clarena.backbones import MLP
from clarena.cl_algorithms import EWC, MAS, SI, Composed
from clarena.cl_algorithms import terms as T
from clarena.cl_algorithms.collectors import FisherImportance
from clarena.cl_algorithms.regularizers import (
    BCNewErrorReg,
    DistillationReg,
    FocalDistillationKLReg,
    FocalDistillationLMReg,
    ParameterChangeReg,
    StrictImitationReg,
)
from clarena.heads import PAD_LOGIT, make_heads

CONFIGS = Path(clarena.configs.__file__).parent / "cl_algorithm"


def _parts(scenario: str) -> tuple:
    backbone = MLP(input_shape=INPUT_SHAPE, hidden_dims=(16,))
    heads = make_heads(scenario, backbone.output_dim)
    return backbone, heads, functools.partial(torch.optim.SGD, lr=0.1), scenario


def shipped(name: str, scenario: str, **overrides) -> Composed:
    """The shipped `configs/cl_algorithm/<name>.yaml`, as Hydra instantiates it."""
    node = OmegaConf.create({"seed": 3, "item": OmegaConf.load(CONFIGS / f"{name}.yaml")}).item
    for key, value in overrides.items():
        OmegaConf.update(node, key, value)
    torch.manual_seed(0)  # the initial weights (torch's default seed differs per process)
    backbone, heads, optimizer, scenario = _parts(scenario)
    return instantiate(node, backbone=backbone, heads=heads, optimizer=optimizer, scenario=scenario)


class Counter:
    """Counts the forward calls of h1's backbone and the buffer draws."""

    def __init__(self, algorithm: Composed) -> None:
        self.h1 = 0
        self.h1_rows: list[int] = []
        self.draws = 0
        assert algorithm.h1 is not None
        algorithm.h1.backbone.register_forward_hook(lambda _, args, __: self._h1(args[0]))
        if algorithm.buffer is not None:
            sample = algorithm.buffer.sample

            def counted(*args, **kwargs):
                self.draws += 1
                return sample(*args, **kwargs)

            algorithm.buffer.sample = counted  # type: ignore[method-assign]

    def _h1(self, x: torch.Tensor) -> None:
        self.h1 += 1
        self.h1_rows.append(x.shape[0])


def _second_task(
    algorithm: Composed, scenario: str, steps: int = 4
) -> tuple[SyntheticStream, tuple]:
    torch.manual_seed(0)
    stream = SyntheticStream(scenario, num_tasks=3)
    run_tasks(algorithm, stream, [1], max_steps=steps)
    stream.setup_task(2)
    algorithm.on_task_start(2, stream)
    return stream, next(iter(stream.train_dataloader()))


def test_lwf_bc_terms_are_their_regularizers_and_h1_runs_once() -> None:
    algorithm = shipped("lwf_bc", "DIL")
    assert algorithm.buffer is None and algorithm.needs_h1  # only what the terms use
    _, (x, y, t) = _second_task(algorithm, "DIL")
    counter = Counter(algorithm)
    terms = algorithm.loss_terms((x, y, t))
    assert counter.h1 == 1  # two terms use h1: one run
    assert list(terms) == ["ce", "distillation", "dissonance"]
    with torch.no_grad():
        logits, old = algorithm(x, t), algorithm.h1(x, t)
    assert torch.equal(terms["ce"], F.cross_entropy(logits, y))
    assert torch.equal(terms["distillation"], DistillationReg(1.0, 2.0)(logits, old))
    assert torch.equal(terms["dissonance"], BCNewErrorReg("cross_entropy", 0.7)(logits, old, y))
    assert terms["dissonance"] > 0


@pytest.mark.parametrize(
    "regularizer",
    [
        BCNewErrorReg("kl_div", 0.5),
        StrictImitationReg("cross_entropy", 0.5, temperature=2.0, focal_alpha=0.3),
        FocalDistillationKLReg(0.5, alpha=1.0, beta=5.0, temperature=2.0),
        FocalDistillationLMReg(0.5, alpha=1.0, beta=5.0),
    ],
    ids=["new_error", "strict", "fd_kl", "fd_lm"],
)
def test_a_dissonance_term_is_its_regularizer_on_current_and_replayed_samples(regularizer) -> None:
    terms = {"ce": T.CrossEntropy(), "replay_ce": T.ReplayCrossEntropy(0.5)}
    terms["dissonance"] = T.Dissonance(regularizer)
    algorithm = Composed(*_parts("DIL"), terms=terms, buffer_size=24)
    _, (x, y, t) = _second_task(algorithm, "DIL", steps=12)  # h1 right on some samples
    with torch.no_grad():  # the model moved since h1 was taken (else FD-KL, FD-LM are 0)
        algorithm.backbone.net[1].weight.add_(0.05)
    replay = copy.deepcopy(algorithm.buffer).sample(x.shape[0])
    counter = Counter(algorithm)
    values = algorithm.loss_terms((x, y, t))
    assert counter.h1 == 1 and counter.draws == 1
    assert counter.h1_rows == [2 * x.shape[0]]  # DIL: current and replayed samples, one run
    xs, ys, ts = (torch.cat([a, replay[k]]) for a, k in ((x, "x"), (y, "y"), (t, "task_ids")))
    with torch.no_grad():  # DIL: every current and replayed sample, h1 on both in one run
        h2, h1 = algorithm(xs, ts), algorithm.h1(xs, ts)
    assert torch.equal(values["replay_ce"], 0.5 * F.cross_entropy(h2[x.shape[0] :], replay["y"]))
    torch.testing.assert_close(values["dissonance"], regularizer(h2, h1, ys), rtol=1e-6, atol=0.0)
    assert values["dissonance"] > 0


def test_er_strict_terms_are_their_regularizers_and_replay_is_drawn_once() -> None:
    algorithm = shipped("er_strict", "CIL", buffer_size=24)
    _, (x, y, t) = _second_task(algorithm, "CIL")
    assert algorithm.buffer is not None
    expected_replay = copy.deepcopy(algorithm.buffer).sample(x.shape[0])
    counter = Counter(algorithm)
    terms = algorithm.loss_terms((x, y, t))
    assert counter.draws == 1 and counter.h1 == 1  # two terms replay, one uses h1
    assert counter.h1_rows == [x.shape[0]]  # CIL: h1 runs on the replayed samples only
    assert list(terms) == ["ce", "replay_ce", "dissonance"]
    xb, yb, tb = expected_replay["x"], expected_replay["y"], expected_replay["task_ids"]
    n = x.shape[0]
    with torch.no_grad():
        joint = algorithm(torch.cat([x, xb]), torch.cat([t, tb]))
        old = algorithm.h1(xb, tb)  # every stored sample is of task 1, which h1 learned
    assert torch.equal(terms["ce"], F.cross_entropy(joint[:n], y))
    assert torch.equal(terms["replay_ce"], F.cross_entropy(joint[n:], yb))
    assert joint.shape[1] == 4 and old.shape[1] == 2  # h1 never saw task 2's classes
    old = F.pad(old, (0, 2), value=PAD_LOGIT)
    expected = StrictImitationReg("cross_entropy", 1.0, 1.0)(joint[n:], old, yb)
    torch.testing.assert_close(terms["dissonance"], expected, rtol=1e-6, atol=0.0)


def test_der_bc_logit_replay_is_the_mse_over_the_stored_columns() -> None:
    algorithm = shipped("der_bc", "CIL", buffer_size=24)
    _, (x, y, t) = _second_task(algorithm, "CIL")
    expected_replay = copy.deepcopy(algorithm.buffer).sample(x.shape[0])
    terms = algorithm.loss_terms((x, y, t))
    xb, tb, stored = expected_replay["x"], expected_replay["task_ids"], expected_replay["logits"]
    assert torch.equal(expected_replay["logit_widths"], torch.full_like(tb, 2))  # stored in task 1
    with torch.no_grad():
        out = algorithm(torch.cat([x, xb]), torch.cat([t, tb]))[x.shape[0] :]
    # DER's MSE over the two columns the stored logits cover: 0.3 * mean over (B, 2)
    expected = 0.3 * F.mse_loss(out[:, :2], stored[:, :2])
    torch.testing.assert_close(terms["logit_replay"], expected, rtol=1e-6, atol=0.0)


def test_ewc_lwf_terms_are_their_regularizers_in_til() -> None:
    algorithm = shipped("ewc_lwf", "TIL")
    stream, (x, y, t) = _second_task(algorithm, "TIL")
    counter = Counter(algorithm)
    terms = algorithm.loss_terms((x, y, t))
    assert counter.h1 == 1
    ewc = algorithm.terms["ewc"]
    assert isinstance(ewc, T.ParameterChange) and isinstance(ewc.collector, FisherImportance)
    # the Fisher is the shipped EWC's on the same model and data
    reference = EWC(*_parts("TIL"))
    reference.backbone.load_state_dict(algorithm.backbone.state_dict())
    reference.heads.setup_task(1, 2)
    reference.heads.load_state_dict(
        {k: v for k, v in algorithm.heads.state_dict().items() if k.startswith("heads.1.")}
    )
    stream.setup_task(1)
    fisher = reference.collector.compute(stream.train_dataloader())
    assert fisher.keys() == ewc.collector.fisher.keys()
    assert all(torch.equal(fisher[k], ewc.collector.fisher[k]) for k in fisher)
    params = {f"backbone.{n}": p for n, p in algorithm.backbone.named_parameters()}
    expected = ParameterChangeReg(1000.0)(params, ewc.collector.anchors, fisher)
    assert torch.equal(terms["ewc"], expected) and expected == 0  # no step since the anchor
    features = algorithm.backbone(x)
    with torch.no_grad():
        teacher = algorithm.h1.heads.head(algorithm.h1.backbone(x), 1)
    distill = DistillationReg(1.0, 2.0)(algorithm.heads.head(features, 1), teacher)
    assert torch.equal(terms["distillation"], distill)
    assert torch.equal(terms["ce"], F.cross_entropy(algorithm(x, t), y))


def test_replay_and_h1_once_per_step_through_a_trainer() -> None:
    algorithm = shipped("er_strict", "DIL", buffer_size=24)
    _second_task(algorithm, "DIL")
    counter = Counter(algorithm)
    stream = SyntheticStream("DIL", num_tasks=3)
    stream.setup_task(2)
    make_trainer(max_steps=5).fit(algorithm, train_dataloaders=stream.train_dataloader())
    assert counter.draws == 5 and counter.h1 == 5


@pytest.mark.parametrize(
    ("name", "scenario"),
    [("ewc_lwf", "TIL"), ("er_strict", "CIL"), ("der_bc", "CIL"), ("lwf_bc", "DIL")],
)
def test_state_resumes_exactly_from_a_weights_only_checkpoint(
    name: str, scenario: str, tmp_path: Path
) -> None:
    overrides = {} if name in ("ewc_lwf", "lwf_bc") else {"buffer_size": 24}
    torch.manual_seed(0)
    algorithm = shipped(name, scenario, **overrides)
    stream = SyntheticStream(scenario, num_tasks=3)
    run_tasks(algorithm, stream, [1, 2], max_steps=3)
    torch.save(algorithm.cl_state_dict(), tmp_path / "state.pt")
    restored = shipped(name, scenario, **overrides)
    restored.load_cl_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    for model in (algorithm, restored):
        torch.manual_seed(5)
        stream.setup_task(3)
        model.on_task_start(3, stream)
    batch = next(iter(stream.train_dataloader()))
    a, b = algorithm.loss_terms(batch), restored.loss_terms(batch)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if algorithm.buffer is not None:
        assert torch.equal(algorithm.buffer.x, restored.buffer.x)


@pytest.mark.parametrize(
    ("cls", "importance", "factor", "value", "options"),
    [
        (EWC, "ewc", "ewc_factor", 50.0, {"online": False, "fisher_labels": "all"}),
        (SI, "si", "si_factor", 5.0, {"damping": 0.1}),
        (MAS, "mas", "mas_factor", 1.0, {}),
    ],
)
def test_a_composition_of_one_collector_is_the_shipped_algorithm(
    cls, importance: str, factor: str, value: float, options: dict
) -> None:
    """CE + ParameterChange(importance) trains exactly as EWC / SI / MAS (CIL: a growing head)."""
    stream = SyntheticStream("CIL", num_tasks=3)
    torch.manual_seed(1)
    shipped_algorithm = cls(*_parts("CIL"), **{factor: value}, **options)
    torch.manual_seed(1)
    term = T.ParameterChange(ParameterChangeReg(value), importance, options)
    composed = Composed(*_parts("CIL"), terms={"ce": T.CrossEntropy(), importance: term})
    for model in (shipped_algorithm, composed):
        torch.manual_seed(2)
        run_tasks(model, stream, [1, 2, 3], max_steps=4)
    a, b = shipped_algorithm.state_dict(), composed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert shipped_algorithm.extra_cl_state().keys() == composed.extra_cl_state().keys()
    assert shipped_algorithm.extra_cl_state()["terms"][importance].keys() == term.cl_state().keys()


def test_bad_compositions_are_refused_with_the_fix() -> None:
    with pytest.raises(
        ValueError,
        match=r"in DIL needs a replay buffer \(set buffer_size > 0\): term\(s\) 'replay_ce'",
    ):
        Composed(*_parts("DIL"), terms={"replay_ce": T.ReplayCrossEntropy()})
    with pytest.raises(ValueError, match=r"'dissonance' replay samples in CIL \(h1 knows none"):
        Composed(*_parts("CIL"), terms={"dissonance": T.Dissonance(BCNewErrorReg("nll", 1.0))})
    with pytest.raises(ValueError, match="is a DistillationReg, not a Term; wrap the regularizer"):
        Composed(*_parts("DIL"), terms={"distillation": DistillationReg(1.0)})
    with pytest.raises(ValueError, match="importance 'fisher' is unknown; choose one of ewc"):
        T.ParameterChange(importance="fisher")
    finetuning = Composed(*_parts("TIL"))
    assert list(finetuning.terms) == ["ce"] and finetuning.buffer is None
    assert not finetuning.needs_h1


@pytest.mark.parametrize("scenario", ["DIL", "CIL"])
@pytest.mark.parametrize("name", ["bc_new_error", "strict_imitation"])
def test_a_composition_of_the_bc_pieces_is_the_shipped_bc_algorithm(name: str, scenario: str):
    """CE + replayed CE + Dissonance trains as `BCNewError` / `StrictImitation` with a buffer."""
    from clarena.cl_algorithms import ALGORITHMS

    stream = SyntheticStream(scenario, num_tasks=3)
    regularizer = (
        BCNewErrorReg("cross_entropy", 0.7)
        if name == "bc_new_error"
        else StrictImitationReg("cross_entropy", 0.7, 2.0)
    )
    options = {"temperature": 2.0} if name == "strict_imitation" else {}
    torch.manual_seed(1)
    shipped_algorithm = ALGORITHMS[name](
        *_parts(scenario), lambda_c=0.7, buffer_size=24, buffer_seed=4, **options
    )
    terms = {"ce": T.CrossEntropy(), "replay_ce": T.ReplayCrossEntropy(1.0)}
    terms["dissonance"] = T.Dissonance(regularizer)
    torch.manual_seed(1)
    composed = Composed(*_parts(scenario), terms=terms, buffer_size=24, buffer_seed=4)
    for model in (shipped_algorithm, composed):
        torch.manual_seed(2)
        run_tasks(model, stream, [1, 2, 3], max_steps=4)
    a, b = shipped_algorithm.state_dict(), composed.state_dict()
    assert a.keys() == b.keys()
    if scenario == "DIL":  # h1 runs on the same rows in the same order: identical
        assert all(torch.equal(a[k], b[k]) for k in a)
    else:  # BCAlgorithm runs h1 on the old replayed rows only, Composed on every replayed row
        # and then keeps the old ones: identical on the CPU here, but a BLAS kernel may round a
        # subset of rows differently, so only float rounding is allowed
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("name", "draws"), [("der", 1), ("derpp", 2)])
def test_der_draws_one_batch_and_derpp_a_second_independent_one(name: str, draws: int) -> None:
    """DER's logit replay uses the shared draw; DER++'s label replay draws a batch of its own
    (`extra_replay`), so a step draws twice, the second batch independent of the first."""
    from clarena.cl_algorithms import ALGORITHMS

    torch.manual_seed(0)
    algorithm = ALGORITHMS[name](*_parts("CIL"), buffer_size=24, buffer_seed=4)
    stream, _ = _second_task(algorithm, "CIL")
    seen: list[torch.Tensor] = []
    sample = algorithm.buffer.sample

    def recorded(*args, **kwargs):
        drawn = sample(*args, **kwargs)
        seen.append(drawn["x"])
        return drawn

    algorithm.buffer.sample = recorded  # type: ignore[method-assign]
    terms = algorithm.loss_terms(next(iter(stream.train_dataloader())))
    assert len(seen) == draws
    assert list(terms) == ["ce", "logit_replay", "replay_ce"][: draws + 1]
    if name == "derpp":
        assert not torch.equal(seen[0], seen[1])  # two draws, not one used twice


def test_derpp_is_der_plus_an_independent_label_replay_term() -> None:
    """DERPP equals the composition of its three terms with `replay_forward: separate`."""
    from clarena.cl_algorithms import DERPP

    stream = SyntheticStream("CIL", num_tasks=3)
    torch.manual_seed(1)
    derpp = DERPP(*_parts("CIL"), buffer_size=24, buffer_seed=4, alpha=0.2, beta=0.4)
    terms = {
        "ce": T.CrossEntropy(),
        "logit_replay": T.LogitReplay(DistillationReg(0.2, distance="MSE")),
        "replay_ce": T.ReplayCrossEntropy(0.4, independent=True),
    }
    torch.manual_seed(1)
    composed = Composed(
        *_parts("CIL"), terms=terms, buffer_size=24, buffer_seed=4, replay_forward="separate"
    )
    for model in (derpp, composed):
        torch.manual_seed(2)
        run_tasks(model, stream, [1, 2], max_steps=4)
    a, b = derpp.state_dict(), composed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert derpp.beta == 0.4


@pytest.mark.parametrize("name", ["ewc", "si", "mas"])
def test_a_checkpoint_of_the_former_class_loads_into_the_composition(name: str) -> None:
    """Before EWC, SI and MAS were compositions their state sat at the top of `extra_cl_state`
    (what the collector's `state_dict` is); such a checkpoint still loads."""
    from clarena.cl_algorithms import ALGORITHMS

    stream = SyntheticStream("CIL", num_tasks=3)
    torch.manual_seed(0)
    algorithm = ALGORITHMS[name](*_parts("CIL"))
    run_tasks(algorithm, stream, [1, 2], max_steps=3)
    old_format = {
        k: v for k, v in algorithm.cl_state_dict().items() if k not in ("buffer", "terms")
    }
    old_format.update(algorithm.collector.state_dict())
    restored = ALGORITHMS[name](*_parts("CIL"))
    restored.load_cl_state_dict(old_format)
    a, b = algorithm.collector.state_dict(), restored.collector.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        values = a[key] if isinstance(a[key], list) else [a[key]]
        others = b[key] if isinstance(b[key], list) else [b[key]]
        for x, y in zip(values, others, strict=True):
            assert x.keys() == y.keys() and all(torch.equal(x[n], y[n]) for n in x)


def test_misused_replay_options_and_collectors_are_refused() -> None:
    from clarena.cl_algorithms.collectors import PathIntegralImportance

    with pytest.raises(ValueError, match="replay_forward must be one of joint, separate"):
        Composed(*_parts("TIL"), replay_forward="twice")
    with pytest.raises(ValueError, match="used before it was bound to an algorithm"):
        PathIntegralImportance().protected_parameters()
    with pytest.raises(ValueError, match="options go with an importance name"):
        T.ParameterChange(importance=PathIntegralImportance(), options={"damping": 0.2})
    with pytest.raises(ValueError, match=r"ParameterChange\('si'\): .*unexpected keyword"):
        T.ParameterChange(importance="si", options={"gamma": 0.5})
    from clarena.cl_algorithms.composed import StepContext

    er = Composed(*_parts("TIL"), terms={"replay_ce": T.ReplayCrossEntropy()}, buffer_size=8)
    stream = SyntheticStream("TIL", num_tasks=3)
    stream.setup_task(1)
    batch = next(iter(stream.train_dataloader()))
    er.heads.setup_task(1, 2)

    with pytest.raises(ValueError, match="draw_replay, but no term declared 'extra_replay'"):
        StepContext(er, batch).draw_replay()

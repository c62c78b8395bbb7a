"""iCaRL: herding, the nearest-mean-of-exemplars rule and the BCE-with-distillation loss on
hand-made tensors; its wiring in CIL and TIL; split_digits runs; refusals; the CL state."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cl_synthetic_stream import SyntheticStream, build_algorithm, predict_batches, run_tasks
from torch import nn

from clarena.cl_algorithms import ICaRL
from clarena.cl_algorithms.exemplars import class_mean, herding, nearest_mean_scores
from clarena.cl_algorithms.icarl import bce_distillation
from clarena.core.errors import ConfigError
from clarena.run.config import compose_config, validate_config
from clarena.run.spec import RunSpec
from clarena.run.task_loop import run_experiment


def _softplus(z: float) -> float:
    return math.log1p(math.exp(z))


# ---------------------------------------------------------------------------- herding
def test_herding_picks_the_hand_computed_exemplars_on_a_2d_set() -> None:
    # mean (0.3, 0.125). k=1: d=(0, .5) is nearest (0.2306). k=2: (d+a)/2=(.5,.25) → 0.0556 beats
    # b (0.1056) and c (0.6556). k=3: (d+a+c)/3=(0, .1667) → 0.0917 beats b (0.1895): herding
    # takes c before b although b is nearer to the mean.
    points = torch.tensor([[1.0, 0.0], [1.2, 0.0], [-1.0, 0.0], [0.0, 0.5]])
    assert herding(points, 4, normalize=False).tolist() == [3, 0, 2, 1]
    assert herding(points, 2, normalize=False).tolist() == [3, 0]  # prefixes are herding sets


def test_herding_normalises_features_and_their_mean() -> None:
    # normalised: (1,0), (0,1), (.7071,.7071), (1,0); mean direction (.8458,.5334).
    # k=1: (.7071,.7071) (0.0494); k=2: the tie (1,0) / (1,0) goes to index 0 (0.0324);
    # k=3: (0,1) gives (.569,.569) (0.0779) against (1,0)'s (.9024,.2357) (0.0918).
    features = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [5.0, 0.0]])
    assert herding(features, 4).tolist() == [2, 0, 1, 3]
    # unnormalised, the mean is (2, 1) and (2, 0) ties with (1, 1) at distance 1: index 0 first
    assert herding(features, 1, normalize=False).tolist() == [0]
    with pytest.raises(ValueError, match=r"m must be in \[1, 4\]"):
        herding(features, 5)


# ---------------------------------------------------------------------------- NME
def test_nearest_mean_scores_are_minus_squared_distances_of_normalised_features() -> None:
    means = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    scores = nearest_mean_scores(torch.tensor([[3.0, 4.0], [-5.0, 0.0]]), means)
    # (3,4) → (.6,.8): 0.4² + 0.8² = 0.8, 0.6² + 0.2² = 0.4, 1.6² + 0.8² = 3.2
    expected = torch.tensor([[-0.8, -0.4, -3.2], [-4.0, -2.0, 0.0]])
    assert torch.allclose(scores, expected, atol=1e-6)
    assert scores.argmax(1).tolist() == [1, 2]
    # mean of (.6,.8) and (0,1) is (.3,.9), normalised by sqrt(0.9)
    s = math.sqrt(0.9)
    mean = class_mean(torch.tensor([[3.0, 4.0], [0.0, 2.0]]))
    assert torch.allclose(mean, torch.tensor([0.3 / s, 0.9 / s]), atol=1e-6)


def _identity_icarl(scenario: str) -> ICaRL:
    """An iCaRL whose features are its 2-D inputs (identity layer, ReLU, positive inputs)."""
    algorithm = build_algorithm("icarl", scenario, hidden=(2,))
    stream = SyntheticStream(scenario)
    algorithm.on_task_start(1, stream)
    linear = algorithm.backbone.net[1]
    assert isinstance(linear, nn.Linear) and linear.in_features == 16
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[0, 0] = linear.weight[1, 1] = 1.0
        linear.bias.zero_()
        head = algorithm.heads.linear if scenario == "CIL" else algorithm.heads.heads["1"]
        head.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))  # the heads predict the other
        head.bias.zero_()
    return algorithm


def _test_once(algorithm: ICaRL, x: torch.Tensor, task: int) -> dict[str, torch.Tensor]:
    inputs = torch.zeros(len(x), 1, 4, 4)
    inputs.view(len(x), 16)[:, :2] = x
    batch = (inputs, torch.zeros(len(x), dtype=torch.long), torch.full((len(x),), task))
    algorithm.on_test_epoch_start()
    return predict_batches(algorithm, [(batch, 0)])[task]


@pytest.mark.parametrize("scenario", ["CIL", "TIL"])
def test_icarl_tests_by_the_nearest_class_mean(scenario: str) -> None:
    algorithm = _identity_icarl(scenario)
    algorithm.class_means = {(1, 0): torch.tensor([1.0, 0.0]), (1, 1): torch.tensor([0.6, 0.8])}
    algorithm.memory_task = 1  # means are in place: nothing to herd
    x = torch.tensor([[5.0, 1.0], [1.0, 1.0], [0.2, 3.0]])
    # (5,1)/|.|=(.981,.196): to (1,0) 0.0385, to (.6,.8) 0.5077 → 0; (1,1) → (.707,.707):
    # 0.586 vs 0.0202 → 1; (0.2,3) → 1
    out = _test_once(algorithm, x, 1)
    assert out["preds"].tolist() == [0, 1, 1] and out["preds_task_aware"].tolist() == [0, 1, 1]
    # the heads say otherwise: their logits are the swapped features (1,5), (1,1), (3,.2)
    algorithm.nearest_mean = False
    assert _test_once(algorithm, x, 1)["preds"].tolist() == [1, 0, 0]


# ---------------------------------------------------------------------------- loss
def test_bce_distillation_equals_the_hand_computed_loss() -> None:
    logits = torch.tensor([[0.0, 1.0, -1.0], [2.0, -0.5, 7.0]])
    y = torch.tensor([2, 1])
    teacher = torch.tensor([[2.0, 0.0, 99.0], [-1.0, 99.0, 99.0]])
    old = torch.tensor([[True, True, False], [True, False, False]])
    valid = torch.tensor([[True, True, True], [True, True, False]])  # row 2: column 3 is padding
    bce, distillation = bce_distillation(logits, y, teacher, old, valid, temperature=2.0)

    def ell(z: float, t: float) -> float:  # −t log σ(z) − (1−t) log(1−σ(z)) = softplus(z) − t z
        return _softplus(z) - t * z

    def sig(v: float) -> float:
        return 1 / (1 + math.exp(-v))

    expected_distillation = (ell(0.0, sig(1.0)) + ell(1.0, sig(0.0)) + ell(2.0, sig(-0.5))) / 2
    expected_bce = (ell(-1.0, 1.0) + ell(-0.5, 1.0)) / 2
    assert distillation.item() == pytest.approx(expected_distillation, rel=1e-6)
    assert bce.item() == pytest.approx(expected_bce, rel=1e-6)


@pytest.mark.parametrize("scenario", ["CIL", "TIL"])
def test_icarl_loss_distils_the_old_columns_of_h1(scenario: str) -> None:
    torch.manual_seed(0)
    algorithm = build_algorithm("icarl", scenario, memory_size=8, replay_batch_size=3)
    stream = SyntheticStream(scenario, num_tasks=2)
    run_tasks(algorithm, stream, [1], max_steps=5)
    stream.setup_task(2)
    algorithm.on_task_start(2, stream)
    x, y, t = next(iter(stream.train_dataloader()))
    generator = algorithm.memory.generator.get_state()
    terms = algorithm.loss_terms((x, y, t))
    algorithm.memory.generator.set_state(generator)
    xb, yb, tb = algorithm.memory.sample(3, x.device)
    assert (tb == 1).all()
    xs, ys, ts = torch.cat([x, xb]), torch.cat([y, yb]), torch.cat([t, tb])
    logits = algorithm(xs, ts)
    n = len(x)
    if scenario == "CIL":  # every row: columns 0, 1 (task 1's classes) distilled from h1
        old = torch.zeros(n + 3, 4, dtype=torch.bool)
        old[:, :2] = True
        teacher = torch.zeros(n + 3, 4)
        teacher[:, :2] = algorithm.h1(xs, ts)
        valid = torch.ones(n + 3, 4, dtype=torch.bool)
    else:  # only the exemplars (task 1) are distilled, over their whole head
        old = torch.zeros(n + 3, 2, dtype=torch.bool)
        old[n:] = True
        teacher = torch.zeros(n + 3, 2)
        teacher[n:] = algorithm.h1(xb, tb)
        valid = torch.ones(n + 3, 2, dtype=torch.bool)
    bce, distillation = bce_distillation(logits, ys, teacher, old, valid, 1.0)
    assert torch.allclose(terms["bce"], bce) and torch.allclose(terms["distillation"], distillation)
    assert terms["distillation"] > 0


def test_memory_keeps_herding_prefixes_within_the_budget() -> None:
    torch.manual_seed(0)
    algorithm = build_algorithm("icarl", "CIL", memory_size=12)
    stream = SyntheticStream("CIL", num_tasks=3)
    run_tasks(algorithm, stream, [1], max_steps=3)
    first = {k: v.clone() for k, v in algorithm.memory.sets.items()}
    assert {k: len(v) for k, v in first.items()} == {(1, 0): 6, (1, 1): 6}
    run_tasks(algorithm, stream, [2, 3], max_steps=3)
    sizes = {k: len(v) for k, v in algorithm.memory.sets.items()}
    assert sizes == {(1, 0): 2, (1, 1): 2, (2, 2): 2, (2, 3): 2, (3, 4): 2, (3, 5): 2}
    for key, exemplars in first.items():
        assert torch.equal(algorithm.memory.sets[key], exemplars[:2])
    assert sorted(algorithm.class_means) == sorted(sizes)
    with pytest.raises(ValueError, match="raise memory_size"):
        algorithm.memory_size = 5
        algorithm.per_class_budget(6)


def test_exemplars_join_a_batch_in_their_share_of_the_training_data() -> None:
    torch.manual_seed(0)
    algorithm = build_algorithm("icarl", "CIL", memory_size=20)
    stream = SyntheticStream("CIL", num_tasks=2)  # 2 classes × 16 training samples per task
    run_tasks(algorithm, stream, [1], max_steps=2)
    stream.setup_task(2)
    algorithm.on_task_start(2, stream)
    assert algorithm.task_samples == 32 and len(algorithm.memory) == 20
    assert {algorithm.num_replayed(8) for _ in range(50)} == {5}  # 8 · 20 / 32 = 5 exactly
    algorithm.task_samples = 48  # 8 · 20 / 48 = 3⅓: 3 or 4, 3⅓ on average
    draws = torch.tensor([algorithm.num_replayed(8) for _ in range(3000)], dtype=torch.float)
    assert set(draws.tolist()) == {3.0, 4.0} and abs(draws.mean().item() - 10 / 3) < 0.05
    algorithm.replay_batch_size = 7
    assert algorithm.num_replayed(8) == 7


# ---------------------------------------------------------------------------- state
def test_cl_state_round_trip_keeps_memory_means_and_predictions(tmp_path: Path) -> None:
    torch.manual_seed(0)
    algorithm = build_algorithm("icarl", "CIL", memory_size=10)
    stream = SyntheticStream("CIL", num_tasks=3)
    run_tasks(algorithm, stream, [1, 2], max_steps=4)
    torch.save(algorithm.cl_state_dict(), tmp_path / "state.pt")
    restored = build_algorithm("icarl", "CIL", memory_size=10)
    restored.load_cl_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert restored.memory_task == 2
    assert restored.memory.sets.keys() == algorithm.memory.sets.keys()
    assert all(torch.equal(restored.memory.sets[k], v) for k, v in algorithm.memory.sets.items())
    assert all(torch.equal(restored.class_means[k], v) for k, v in algorithm.class_means.items())
    x = torch.cat([s.tensors[0] for s in stream.test_sets[:2]])
    tasks = torch.cat([s.tensors[2] for s in stream.test_sets[:2]])
    assert torch.equal(
        algorithm.nearest_mean_logits(algorithm.backbone(x), tasks),
        restored.nearest_mean_logits(restored.backbone(x), tasks),
    )
    assert torch.equal(
        algorithm.memory.generator.get_state(), restored.memory.generator.get_state()
    )


# ---------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("scenario", ["DIL", "DataIL"])
def test_shared_class_scenarios_are_refused_in_one_line(scenario: str) -> None:
    with pytest.raises(ValueError, match=r"^ICaRL does not support scenario") as info:
        build_algorithm("icarl", scenario)
    assert "\n" not in str(info.value)
    cfg = compose_config(["cl_algorithm=icarl", f"scenario={scenario}", "output_dir=/tmp/unused"])
    with pytest.raises(ConfigError, match="cl_algorithm ICaRL does not support scenario") as info:
        validate_config(cfg, build=False)
    assert "\n" not in str(info.value)


def test_a_bad_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="exactly one of memory_size and exemplars_per_class"):
        build_algorithm("icarl", "CIL", memory_size=100, exemplars_per_class=10)
    with pytest.raises(ValueError, match="must be positive"):
        build_algorithm("icarl", "CIL", memory_size=0)


# ---------------------------------------------------------------------------- split_digits
@pytest.mark.integration
@pytest.mark.parametrize("scenario", ["CIL", "TIL"])
def test_split_digits_run(scenario: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = compose_config(
        [
            "cl_dataset=split_digits",
            "cl_algorithm=icarl",
            "cl_algorithm.memory_size=200",
            f"scenario={scenario}",
            "seed=0",
            "trainer.max_epochs=-1",
            "trainer.max_steps=30",
            "trainer.enable_progress_bar=false",
            "logger=none",
            f"output_dir={run}",
        ]
    )
    validate_config(cfg)
    run.mkdir()
    run_experiment(RunSpec.of(cfg, run))
    metrics = json.loads((run / "results" / "metrics.json").read_text())
    final = metrics["accuracy_matrix"][-1]
    assert len(final) == 5 and all(a is not None for a in final)
    state = torch.load(run / "checkpoints" / "after_task_5.pt", weights_only=True)
    assert state["cl_state"]["icarl"]["memory_task"] == 5
    assert len(state["cl_state"]["icarl"]["mean_keys"]) == 10
    # exemplar replay keeps the old digits far above chance (CIL 10 %, TIL 50 %) on every task
    # (measured with seed 0: CIL ≥ 0.682, TIL ≥ 0.955; finetuning's CIL old tasks are at 0)
    assert min(final) > (0.5 if scenario == "CIL" else 0.8), final

"""Updates of a model already in use: the deployed model as task 1, ELODI and BCWI."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from cl_synthetic_stream import SyntheticStream, build_algorithm, run_tasks
from omegaconf import OmegaConf

from clarena.cl_algorithms.bcwi import model_state
from clarena.cl_algorithms.deployed import DeployedModel, DeployedModelError
from clarena.cl_algorithms.regularizers import logit_difference_inhibition
from clarena.core.errors import ConfigError
from clarena.reports.writers import write_results
from clarena.run.deployed import update_options


def _trained_model(seed: int = 0, hidden: tuple[int, ...] = (16,)):
    """A finetuning model trained on task 1 of a DataIL stream (what a team has deployed)."""
    torch.manual_seed(seed)
    stream = SyntheticStream("DataIL", num_tasks=2, seed=3)
    model = build_algorithm("finetuning", "DataIL", hidden=hidden)
    run_tasks(model, stream, [1], max_steps=6)
    return model


def _weights(model) -> dict[str, dict[str, torch.Tensor]]:
    return {"backbone": model.backbone.state_dict(), "heads": model.heads.state_dict()}


@pytest.mark.parametrize("layout", ["parts", "flat", "cl_state", "task_checkpoint", "lightning"])
def test_every_saved_layout_gives_the_same_weights(layout: str) -> None:
    model = _trained_model()
    payload = {
        "parts": _weights(model),
        "flat": model.state_dict(),
        "cl_state": model.cl_state_dict(),
        "task_checkpoint": {"cl_state": model.cl_state_dict(), "task_id": 1},
        "lightning": {"state_dict": model.state_dict(), "epoch": 0},
    }[layout]
    deployed = DeployedModel.from_payload(payload, "deployed.pt")
    fresh = build_algorithm("finetuning", "DataIL")
    fresh.heads.setup_task(1, 2)
    deployed.load_into(fresh.backbone, fresh.heads)
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values())
    )


def test_a_deployed_model_is_task_1_untrained_and_the_frozen_h1_of_the_update() -> None:
    deployed_source = _trained_model(seed=1)
    deployed = DeployedModel.from_payload(_weights(deployed_source), "deployed.pt")
    torch.manual_seed(5)
    stream = SyntheticStream("DataIL", num_tasks=2, seed=3)
    algorithm = build_algorithm("bc_new_error", "DataIL", deployed_model=deployed)
    results = run_tasks(algorithm, stream, [1], max_steps=6)
    # task 1 trained nothing: the model is the deployed one, and so are its test predictions
    assert all(
        torch.equal(a, b)
        for a, b in zip(algorithm.state_dict().values(), deployed_source.state_dict().values())
    )
    x, _, t = stream.test_sets[0].tensors
    with torch.no_grad():
        expected = deployed_source(x, t).argmax(1)
    assert torch.equal(results.predictions(1, 1), expected)
    run_tasks(algorithm, stream, [2], max_steps=6)
    h1 = algorithm.h1
    assert h1 is not None and not h1.training
    assert all(not p.requires_grad for p in h1.parameters())
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            model_state(h1.backbone, h1.heads).values(), deployed_source.state_dict().values()
        )
    )


def test_a_weights_file_of_another_architecture_is_refused_in_one_line(tmp_path: Path) -> None:
    other = _trained_model(hidden=(32,))
    path = tmp_path / "deployed.pt"
    torch.save(_weights(other), path)
    backbone = build_algorithm("finetuning", "DataIL").backbone  # hidden (16,)
    cfg = OmegaConf.create({"update": {"old_model": str(path), "ensemble": None}})
    with pytest.raises(ConfigError) as refused:
        update_options(cfg["update"], backbone, num_tasks=2)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"update.old_model: {path} does not fit the backbone: ")
    assert "(32, 16)" in message and "(16, 16)" in message
    # and so does the algorithm, given the weights directly
    with pytest.raises(DeployedModelError, match="does not fit the backbone"):
        build_algorithm(
            "finetuning",
            "DataIL",
            deployed_model=DeployedModel.from_payload(_weights(other), "x.pt"),
        )


def test_bad_update_inputs_are_refused_in_one_line(tmp_path: Path) -> None:
    backbone = build_algorithm("finetuning", "DataIL").backbone
    cases = {
        str(tmp_path / "missing.pt"): "does not exist",
        str(tmp_path): "holds no finished task checkpoint",
    }
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    cases[str(tmp_path / "junk.pt")] = "not a PyTorch checkpoint"
    torch.save({"backbone": {"w": torch.zeros(2)}, "classifier": {}}, tmp_path / "odd.pt")
    cases[str(tmp_path / "odd.pt")] = "neither backbone.* nor heads.*"
    for spec, cause in cases.items():
        cfg = OmegaConf.create({"update": {"old_model": spec}})
        with pytest.raises(ConfigError, match=cause) as refused:
            update_options(cfg["update"], backbone, num_tasks=2)
        assert "\n" not in str(refused.value) and str(refused.value).startswith("update.old_model")
    torch.save(_weights(_trained_model()), tmp_path / "ok.pt")
    cfg = OmegaConf.create({"update": {"old_model": str(tmp_path / "ok.pt")}})
    with pytest.raises(ConfigError, match="num_tasks >= 2"):
        update_options(cfg["update"], backbone, num_tasks=1)


# ---------------------------------------------------------------------------------------- ELODI
def test_elodi_trains_its_ensemble_and_distils_towards_its_mean() -> None:
    torch.manual_seed(0)
    stream = SyntheticStream("DataIL", num_tasks=2, seed=3)
    algorithm = build_algorithm(
        "elodi", "DataIL", lambda_c=0.5, top_k=1, ensemble_size=2, ensemble_epochs=1
    )
    run_tasks(algorithm, stream, [1], max_steps=4)
    assert algorithm.members == []
    stream.setup_task(2)
    algorithm.on_task_start(2, stream)
    members = algorithm.members
    assert len(members) == 2
    assert all(not m.training and not any(p.requires_grad for p in m.parameters()) for m in members)
    # the members differ from the model (they were trained) and from each other (own orders)
    start = model_state(algorithm.backbone, algorithm.heads)
    first, second = (model_state(m.backbone, m.heads) for m in members)
    assert not torch.equal(first["heads.linear.weight"], start["heads.linear.weight"])
    assert not torch.equal(first["heads.linear.weight"], second["heads.linear.weight"])
    batch = next(iter(stream.train_dataloader()))
    terms = algorithm.loss_terms(batch)
    x, _, t = batch
    with torch.no_grad():
        reference = torch.stack([m(x, t) for m in members])
    expected = logit_difference_inhibition(algorithm(x, t), reference, 0.5, top_k=1)
    torch.testing.assert_close(terms["ldi"], expected)
    assert terms["ldi"].item() > 0
    # the members travel with the CL state
    state = algorithm.cl_state_dict()
    restored = build_algorithm("elodi", "DataIL", lambda_c=0.5, top_k=1, ensemble_size=2)
    restored.load_cl_state_dict(state)
    with torch.no_grad():
        again = torch.stack([m(x, t) for m in restored.members])
    torch.testing.assert_close(again, reference)


def test_elodi_loads_its_ensemble_and_needs_one() -> None:
    loaded = [
        DeployedModel.from_payload(_weights(_trained_model(seed=s)), f"m{s}.pt") for s in (1, 2)
    ]
    stream = SyntheticStream("DataIL", num_tasks=2, seed=3)
    algorithm = build_algorithm("elodi", "DataIL", ensemble_size=0, ensemble=loaded)
    run_tasks(algorithm, stream, [1, 2], max_steps=3)
    for member, model in zip(algorithm.members, loaded):
        weights = model_state(member.backbone, member.heads)
        assert torch.equal(weights["heads.linear.weight"], model.heads["linear.weight"])
    with pytest.raises(ValueError, match="needs reference models"):
        build_algorithm("elodi", "DataIL", ensemble_size=0)
    with pytest.raises(ValueError, match="not both"):
        build_algorithm("elodi", "DataIL", ensemble_size=2, ensemble=loaded)
    with pytest.raises(ValueError, match="does not support scenario 'CIL'"):
        build_algorithm("elodi", "CIL", ensemble_size=1)


# ----------------------------------------------------------------------------------------- BCWI
def _bcwi_after_update(**options):
    torch.manual_seed(0)
    stream = SyntheticStream("DataIL", num_tasks=2, seed=3)
    algorithm = build_algorithm("bcwi", "DataIL", alphas=[1.0], select="score", **options)
    run_tasks(algorithm, stream, [1, 2], max_steps=8)
    return algorithm, stream


def test_bcwi_at_alpha_zero_is_the_old_model_and_at_one_the_new() -> None:
    algorithm, stream = _bcwi_after_update()
    assert algorithm.alpha_records[2]["alpha"] == 1.0
    new = {k: v.clone() for k, v in model_state(algorithm.backbone, algorithm.heads).items()}
    h1 = algorithm.h1
    old = model_state(h1.backbone, h1.heads)
    assert any(not torch.equal(new[k], old[k]) for k in new)
    val = list(stream.val_dataloader())
    # alpha = 1: the trained update itself, bit for bit
    algorithm.alphas = [1.0]
    assert algorithm.interpolate(val) == 1.0
    assert all(
        torch.equal(v, new[k]) for k, v in model_state(algorithm.backbone, algorithm.heads).items()
    )
    # alpha = 0: h1 exactly, so no negative flip against it
    algorithm.alphas, algorithm.select = [0.0], "nfr_budget"
    assert algorithm.interpolate(val) == 0.0
    now = model_state(algorithm.backbone, algorithm.heads)
    assert all(torch.equal(now[k], old[k]) for k in old)
    record = algorithm.alpha_records[2]
    assert record["val_nfr"] == [0.0]
    x, _, t = stream.test_sets[0].tensors
    with torch.no_grad():
        assert torch.equal(algorithm(x, t).argmax(1), h1(x, t).argmax(1))


def test_bcwi_chooses_the_largest_alpha_within_the_budget_on_validation_data() -> None:
    torch.manual_seed(0)
    stream = SyntheticStream("DataIL", num_tasks=2, seed=3)
    grid = [0.0, 0.5, 1.0]
    algorithm = build_algorithm("bcwi", "DataIL", alphas=grid, select="nfr_budget", max_nfr=0.05)
    run_tasks(algorithm, stream, [1, 2], max_steps=8)
    record = algorithm.alpha_records[2]
    assert record["alphas"] == grid and record["val_nfr"][0] == 0.0
    assert record["alpha"] == max(a for a, n in zip(grid, record["val_nfr"]) if n <= 0.05)
    restored = build_algorithm("bcwi", "DataIL", alphas=grid)
    restored.load_cl_state_dict(algorithm.cl_state_dict())
    assert restored.alpha_records == algorithm.alpha_records
    with pytest.raises(ValueError, match="must contain 0"):
        build_algorithm("bcwi", "DataIL", alphas=[0.5, 1.0], select="nfr_budget")
    copy.deepcopy(algorithm)  # the stored datamodule does not stop a copy


def test_the_documented_route_from_a_plain_pytorch_model(tmp_path: Path) -> None:
    # docs/model_updates.md: build clarena's backbone, copy the weights in, save both parts
    torch.manual_seed(4)
    plain = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
    )
    torch.save(plain.state_dict(), tmp_path / "my_model.pt")
    mine = torch.load(tmp_path / "my_model.pt", weights_only=True)
    backbone = build_algorithm("finetuning", "DataIL").backbone
    backbone.load_state_dict({"net.1.weight": mine["1.weight"], "net.1.bias": mine["1.bias"]})
    heads = {"linear.weight": mine["3.weight"], "linear.bias": mine["3.bias"]}
    torch.save({"backbone": backbone.state_dict(), "heads": heads}, tmp_path / "deployed.pt")

    algorithm = build_algorithm("bc_new_error", "DataIL")
    cfg = OmegaConf.create({"update": {"old_model": str(tmp_path / "deployed.pt")}})
    options = update_options(cfg["update"], algorithm.backbone, num_tasks=2)
    algorithm = build_algorithm("bc_new_error", "DataIL", **options)
    stream = SyntheticStream("DataIL", num_tasks=2, seed=3)
    results = run_tasks(algorithm, stream, [1], max_steps=2)
    x, _, _ = stream.test_sets[0].tensors
    with torch.no_grad():
        assert torch.equal(results.predictions(1, 1), plain(x).argmax(1))


def test_bcwi_reports_its_alpha_into_metrics_json(tmp_path: Path) -> None:
    import json

    from clarena.metrics import CLResults

    algorithm = build_algorithm("bcwi", "DataIL", alphas=[0.0, 1.0])
    algorithm.alpha_records[2] = {
        "alpha": 0.0,
        "alphas": [0.0, 1.0],
        "val_accuracy": [0.5, 0.75],
        "val_nfr": [0.0, 0.25],
    }
    results = CLResults("DataIL")
    labels = torch.tensor([0, 1, 1, 0])
    results.add(1, 1, labels, labels)
    results.set_algorithm_record(algorithm.results_record())
    write_results(results.record(), tmp_path, plots=False)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["algorithm"] == {"bcwi": {"task_2": algorithm.alpha_records[2]}}
    again = CLResults()
    again.load_state_dict(results.state_dict())
    assert again.algorithm_record == written["algorithm"]
    assert build_algorithm("finetuning", "DataIL").results_record() == {}

"""SI, MAS and A-GEM from their shipped configs on the 8×8 digits: five split tasks in TIL, CIL and
DIL (`split_digits`), three data-incremental chunks in DataIL (`update_digits`), through the
pipeline's task loop with a Lightning trainer per task."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from cl_synthetic_stream import make_trainer, test_predictions
from hydra.utils import instantiate
from lightning import seed_everything
from omegaconf import OmegaConf

import clarena.configs
from clarena.cl_algorithms import AGEM, ALGORITHMS, MAS, SI
from clarena.heads import make_heads

CONFIGS = Path(clarena.configs.__file__).parent
STEPS = 16
RUNS = [
    (name, scenario)
    for name in ("si", "mas", "agem")
    for scenario in ("TIL", "CIL", "DIL", "DataIL")
]


def _load(group: str, name: str, scenario: str):
    top = {"seed": 0, "scenario": scenario, "data_root": None}
    return OmegaConf.merge(top, {"item": OmegaConf.load(CONFIGS / group / f"{name}.yaml")}).item


@pytest.mark.parametrize(("name", "scenario"), RUNS)
def test_a_digits_run_in_every_scenario(name: str, scenario: str) -> None:
    seed_everything(0, verbose=False)
    dataset = "update_digits" if scenario == "DataIL" else "split_digits"
    datamodule = instantiate(_load("cl_dataset", dataset, scenario))
    backbone = instantiate(
        _load("backbone", "mlp", scenario), input_shape=datamodule.input_shape, hidden_dims=[64]
    )
    algorithm = instantiate(
        _load("cl_algorithm", name, scenario),
        backbone=backbone,
        heads=make_heads(scenario, backbone.output_dim),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-2),
        scenario=scenario,
    )
    assert type(algorithm) is ALGORITHMS[name]
    tasks = range(1, datamodule.num_tasks + 1)
    learned = []  # accuracy on each task right after training on it
    available: dict[tuple[int, int], int] = {}  # training samples of each (task, class)
    for t in tasks:
        datamodule.setup_task(t, cumulative=algorithm.cumulative_data)
        algorithm.on_task_start(t, datamodule)
        trainer = make_trainer(STEPS)
        trainer.fit(algorithm, datamodule=datamodule)
        assert torch.isfinite(trainer.callback_metrics["train/loss"])
        outputs = test_predictions(algorithm, datamodule=datamodule)
        out = outputs[t]
        learned.append((out["preds_task_aware"] == out["targets"]).double().mean().item())
        for _, y, _ in datamodule.train_dataloader():
            for label in y.tolist():
                available[(t, label)] = available.get((t, label), 0) + 1
        algorithm.on_task_end(t, datamodule)
    assert sorted(outputs) == list(tasks)
    assert learned[0] > 0.8, learned  # the first task, unconstrained, is learned
    if isinstance(algorithm, AGEM):
        # 100 random training samples of each (task, class), or all of them when it has fewer
        memory = algorithm.memory
        pairs = torch.stack([memory["task_ids"], memory["y"]], 1)
        kept = {tuple(k.tolist()): int(n) for k, n in zip(*pairs.unique(dim=0, return_counts=True))}
        assert kept == {k: min(100, n) for k, n in available.items()}
        assert max(available.values()) > 100 or scenario == "DataIL"
    if isinstance(algorithm, SI | MAS):
        importance = algorithm.collector.importance
        assert "backbone.net.1.weight" in importance and (scenario == "TIL") != (
            "heads.linear.weight" in importance
        )
        assert all(torch.isfinite(v).all() for v in importance.values())
        assert importance["backbone.net.1.weight"].abs().sum() > 0
    if isinstance(algorithm, MAS):
        assert all((v >= 0).all() for v in importance.values())

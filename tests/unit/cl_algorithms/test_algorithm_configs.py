"""The shipped `cl_algorithm/` and `backbone/` configs instantiate what the registry names."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import clarena.configs
from clarena.cl_algorithms import ALGORITHMS
from clarena.heads import make_heads

CONFIGS = Path(clarena.configs.__file__).parent


def _load(group: str, name: str):
    cfg = OmegaConf.create({"seed": 7, "item": OmegaConf.load(CONFIGS / group / f"{name}.yaml")})
    return cfg.item


def test_every_registered_algorithm_has_a_config_and_no_more() -> None:
    names = sorted(p.stem for p in (CONFIGS / "cl_algorithm").glob("*.yaml"))
    # the other configs are YAML-only compositions of `Composed` (tests/unit/cl_algorithms/
    # test_composed.py runs them)
    compositions = [n for n in names if _load("cl_algorithm", n)._target_.endswith(".Composed")]
    assert sorted(set(names) - set(compositions) | {"composed"}) == sorted(ALGORITHMS)
    assert sorted(compositions) == ["composed", "der_bc", "er_strict", "ewc_lwf", "lwf_bc"]


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_algorithm_config_instantiates(name: str) -> None:
    backbone = instantiate(_load("backbone", "mlp"), input_shape=(1, 8, 8))
    supported = ALGORITHMS[name].supported_scenarios
    scenario = "DIL" if "DIL" in supported else supported[0]
    algorithm = instantiate(
        _load("cl_algorithm", name),
        backbone=backbone,
        heads=make_heads(scenario, backbone.output_dim),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
        scenario=scenario,
    )
    assert type(algorithm) is ALGORITHMS[name]
    if hasattr(algorithm, "buffer") and algorithm.buffer is not None:
        # the buffer is seeded from the run's seed
        assert torch.equal(
            algorithm.buffer.generator.get_state(), torch.Generator().manual_seed(7).get_state()
        )


@pytest.mark.parametrize(
    ("name", "shape", "output_dim"),
    [
        ("mlp", (1, 8, 8), 256),
        ("mlp_2x400", (1, 28, 28), 400),
        ("cnn", (1, 28, 28), 256),
        ("resnet18", (3, 32, 32), 160),
    ],
)
def test_backbone_config_instantiates(name: str, shape: tuple, output_dim: int) -> None:
    backbone = instantiate(_load("backbone", name), input_shape=shape)
    assert backbone.output_dim == output_dim
    assert backbone(torch.zeros(2, *shape)).shape == (2, output_dim)

"""`docs/composing.md` holds working code: its term file and test run, its YAML builds."""

from __future__ import annotations

import functools
import importlib
import re
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from clarena.backbones import MLP
from clarena.cl_algorithms import Composed
from clarena.heads import make_heads

DOC = Path(__file__).resolve().parents[3] / "docs" / "composing.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture
def my_terms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    term_file, test_file = _blocks("python")
    (tmp_path / "my_terms.py").write_text(term_file)
    (tmp_path / "test_my_terms.py").write_text(test_file)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("test_my_terms")
    for name in ("my_terms", "test_my_terms"):
        sys.modules.pop(name, None)


def test_the_python_example_term_and_its_test_run(my_terms) -> None:
    my_terms.test_feature_distillation_is_the_feature_distance_to_h1()


def test_every_yaml_block_builds_a_composed_algorithm(my_terms) -> None:
    blocks = _blocks("yaml")
    assert len(blocks) == 4
    for text in blocks:
        node = OmegaConf.create({"seed": 0, "item": OmegaConf.create(text)}).item
        # lwf_bc has no buffer, so its dissonance needs DIL (h1 knows every class there)
        scenario = "DIL" if "dissonance" in node.terms else "TIL"
        scenario = "CIL" if "buffer_size" in node else scenario
        backbone = MLP(input_shape=(1, 4, 4), hidden_dims=(8,))
        algorithm = instantiate(
            node,
            backbone=backbone,
            heads=make_heads(scenario, backbone.output_dim),
            optimizer=functools.partial(torch.optim.SGD, lr=0.1),
            scenario=scenario,
        )
        assert isinstance(algorithm, Composed) and list(algorithm.terms) == list(node.terms)

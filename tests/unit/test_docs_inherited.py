"""Issue 37 item 16: the API docs show no docstring a clarena class inherits from torch or
Lightning (`nn.Module.__init__`'s on every model, `LightningModule`'s on every algorithm), and
keep one inherited from a clarena base class."""

from __future__ import annotations

import sys
import textwrap
import types

import pdoc.doc
import pytest

from clarena.commands import docs

PROBE = '''
from torch import nn


class Base:
    """A clarena base."""

    def hook(self, task: int) -> None:
        """Called at the start of every task."""


class Model(nn.Module, Base):
    def __init__(self, width: int) -> None:
        super().__init__()

    def forward(self, x):
        return x

    def hook(self, task: int) -> None:
        pass

    def train(self, mode: bool = True):
        """Our own words."""
        return super().train(mode)


class Quiet(nn.Module):
    pass
'''


@pytest.fixture
def probe() -> pdoc.doc.Module:
    module = types.ModuleType("clarena._docs_probe")
    sys.modules[module.__name__] = module
    try:
        exec(compile(textwrap.dedent(PROBE), "<probe>", "exec"), module.__dict__)
        yield pdoc.doc.Module(module)
    finally:
        del sys.modules[module.__name__]


def test_docstrings_inherited_from_torch_are_cleared(probe: pdoc.doc.Module) -> None:
    model = probe.get("Model")
    before = {m.name: m.docstring for m in model.own_members if m.name != "__doc__"}
    assert before["__init__"].startswith("Initialize internal Module state")  # the defect
    assert before["forward"].startswith("Define the computation performed at every call")
    for name in ("Model", "Quiet"):  # no class docstring: nn.Module's
        assert probe.get(name).docstring.startswith("Base class for all neural network modules")
    assert docs.clear_foreign_docstrings(probe) == 4
    after = {m.name: m.docstring for m in model.own_members if m.name != "__doc__"}
    assert after["__init__"] == "" and after["forward"] == ""
    assert after["hook"] == "Called at the start of every task."  # from a clarena base: kept
    assert after["train"] == "Our own words."
    assert probe.get("Quiet").docstring == "" and model.docstring == ""
    assert probe.get("Base").docstring == "A clarena base."


def test_the_shipped_algorithms_lose_lightnings_attribute_list() -> None:
    from clarena.cl_algorithms.lwf import LwF

    name = "clarena.cl_algorithms.lwf"
    lwf = pdoc.doc.Class(name, "LwF", LwF, (name, "LwF"))
    init = next(m for m in lwf.own_members if m.name == "__init__")
    assert "prepare_data_per_node" in init.docstring  # LightningModule's, on every algorithm
    assert docs.clear_foreign_docstrings(lwf) == 1
    assert init.docstring == ""
    assert lwf.docstring.startswith("Learning without Forgetting")

"""The examples in the metrics docstrings run and give the values they show."""

from __future__ import annotations

import doctest

import pytest

from clarena.metrics import compatibility
from clarena.metrics.functional import cl
from clarena.metrics.functional import compatibility as functional_compatibility


@pytest.mark.parametrize("module", [cl, functional_compatibility, compatibility])
def test_docstring_examples(module):
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried > 0 and failures == 0

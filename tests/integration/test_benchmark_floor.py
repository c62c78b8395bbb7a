"""`benchmarks/vs_avalanche.py --floor`'s second floor measures Lightning's imports without
torchmetrics' optional ones; these tests check that its patch skips exactly those imports, that
the plain import does load them (so the check can fail), and that nothing stays patched after.

Each case runs in a fresh interpreter: which modules an import loads is only visible once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
OPTIONAL = ("torchvision", "scipy.signal", "matplotlib.pyplot")

PROBE = """
import contextlib, json, sys
sys.path.insert(0, {benchmarks!r})
import torch
import lightning_utilities.core.imports as imports
import vs_avalanche

finders = len(sys.meta_path)
skip = vs_avalanche.torchmetrics_without_optional_imports if {skip} else contextlib.nullcontext
with skip():
    import lightning.pytorch
import torchmetrics.utilities.imports as flags
print(json.dumps({{
    "loaded": [m for m in {optional!r} if m in sys.modules],
    "flags": [bool(getattr(flags, f)) for f in vs_avalanche._TORCHMETRICS_OPTIONAL],
    "scipy_available": imports.package_available("scipy"),
    "finders_left": len(sys.meta_path) - finders,
}}))
"""


def probe(skip: bool) -> dict:
    code = PROBE.format(benchmarks=str(BENCHMARKS), skip=skip, optional=OPTIONAL)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_plain_import_loads_torchmetrics_optional_packages() -> None:
    result = probe(skip=False)
    assert result["loaded"] == list(OPTIONAL)
    assert result["flags"] == [True, True, True]


def test_the_floor_patch_skips_them_and_leaves_nothing_patched() -> None:
    result = probe(skip=True)
    assert result["loaded"] == []
    assert result["flags"] == [False, False, False]
    assert result["scipy_available"] is True  # `package_available` is lightning_utilities' again
    assert result["finders_left"] == 0

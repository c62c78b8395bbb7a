"""The ground floor's facts are defined once and shared: scenario names, the IDX reader, the
compatibility counts and scores (hand-counted), used alike by the PyTorch and TensorFlow sides."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from clarena.core import compatibility, idx, scenarios


def test_every_wing_uses_the_one_scenario_tuple() -> None:
    from clarena.cl_datasets import base as datasets_base
    from clarena.heads import heads
    from clarena.run import config

    assert scenarios.SCENARIOS == ("TIL", "CIL", "DIL", "DataIL")
    for module in (heads, datasets_base, config):
        assert module.SCENARIOS is scenarios.SCENARIOS


def test_the_idx_reader_is_the_datasets_one_and_reads_gzip(tmp_path: Path) -> None:
    from clarena.cl_datasets import formats

    assert formats.read_idx is idx.read_idx
    # 2 × 3 big-endian int16: type code 0x0B, 2 dimensions
    raw = bytes([0, 0, 0x0B, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    raw += np.arange(-3, 3, dtype=">i2").tobytes()
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    out = idx.read_idx(tmp_path / "a.gz")
    assert out.dtype == np.int16 and out.tolist() == [[-3, -2, -1], [0, 1, 2]]
    (tmp_path / "b").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="header promises 24 bytes but the file has 23"):
        idx.read_idx(tmp_path / "b")


# sample:        0  1  2  3  4  5  6  7  8  9
OLD_RIGHT = [1, 1, 1, 1, 1, 0, 0, 0, 1, 0]
NEW_RIGHT = [1, 1, 0, 1, 0, 1, 1, 0, 1, 1]
# both right 0 1 3 8 (4); negative flips 2 4 (2); positive flips 5 6 9 (3); both wrong 7 (1)


def test_counts_and_scores_by_hand() -> None:
    counts = compatibility.counts_from_correct(OLD_RIGHT, NEW_RIGHT)
    assert counts == {
        "total": 10,
        "old_correct": 6,
        "new_correct": 7,
        "both_correct": 4,
        "both_wrong": 1,
        "negative_flips": 2,
        "positive_flips": 3,
    }
    assert tuple(counts) == compatibility.COUNT_NAMES
    scores = compatibility.compatibility_scores(counts)
    assert tuple(scores) == compatibility.SCORE_NAMES
    assert scores == {"nfr": 2 / 10, "pfr": 3 / 10, "nfi": 2 / 3, "btc": 4 / 6, "bec": 1 / 3}
    empty = compatibility.compatibility_scores(compatibility.counts_from_correct([], []))
    assert all(math.isnan(v) for v in empty.values())
    with pytest.raises(ValueError, match="scored on 2 and 1 samples"):
        compatibility.counts_from_correct([True, False], [True])


def test_the_torch_metrics_use_the_same_names_and_formulas() -> None:
    from clarena.metrics.functional import compatibility as functional

    assert functional.COUNT_NAMES is compatibility.COUNT_NAMES
    assert functional.SCORE_NAMES is compatibility.SCORE_NAMES
    targets = torch.zeros(10, dtype=torch.long)
    old = 1 - torch.tensor(OLD_RIGHT)  # predicts 0 (right) where OLD_RIGHT is 1
    new = 1 - torch.tensor(NEW_RIGHT)
    counts = functional.compatibility_counts(old, new, targets)
    assert {k: int(v) for k, v in counts.items()} == compatibility.counts_from_correct(
        OLD_RIGHT, NEW_RIGHT
    )
    scores = functional.compatibility_scores(counts)
    assert {k: float(v) for k, v in scores.items()} == {
        "nfr": 2 / 10,
        "pfr": 3 / 10,
        "nfi": 2 / 3,
        "btc": 4 / 6,
        "bec": 1 / 3,
    }
    assert all(v.dtype == torch.float64 for v in scores.values())

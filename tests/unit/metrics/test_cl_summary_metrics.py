"""Average accuracy, BWT, forgetting and FWT on an accuracy matrix worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clarena.metrics import (
    average_accuracy,
    average_accuracy_per_task,
    backward_transfer,
    forgetting,
    forward_transfer,
)

NAN = float("nan")
# a[t, j]: row = after training task t, column = test on task j.
MATRIX = [
    [0.90, NAN, NAN],
    [0.95, 0.70, NAN],
    [0.60, 0.75, 0.85],
]


def test_average_accuracy_is_the_mean_of_the_last_row():
    # (0.60 + 0.75 + 0.85) / 3 = 2.20 / 3
    assert average_accuracy(MATRIX) == pytest.approx(2.20 / 3, abs=1e-12)


def test_average_accuracy_per_task_averages_each_row_over_tasks_seen():
    # [0.90, (0.95 + 0.70) / 2, (0.60 + 0.75 + 0.85) / 3]
    assert average_accuracy_per_task(MATRIX) == pytest.approx([0.90, 0.825, 2.20 / 3], abs=1e-12)


def test_backward_transfer_compares_final_with_just_learned():
    # ((0.60 - 0.90) + (0.75 - 0.70)) / 2 = (-0.30 + 0.05) / 2
    assert backward_transfer(MATRIX) == pytest.approx(-0.125, abs=1e-12)


def test_forgetting_uses_the_best_earlier_accuracy_not_the_diagonal():
    # task 1: max(0.90, 0.95) - 0.60 = 0.35; task 2: 0.70 - 0.75 = -0.05; mean = 0.15
    assert forgetting(MATRIX) == pytest.approx(0.15, abs=1e-12)
    # differs from -BWT here, because task 1 peaked after task 2
    assert forgetting(MATRIX) != pytest.approx(-backward_transfer(MATRIX))


def test_forward_transfer_against_a_reference_row():
    reference = [0.50, 0.60, 0.80]
    # ((0.70 - 0.60) + (0.85 - 0.80)) / 2 = 0.075; b_1 is not used
    assert forward_transfer(MATRIX, reference) == pytest.approx(0.075, abs=1e-12)


def test_forward_transfer_zero_shot_reads_the_entries_above_the_diagonal():
    full = [row[:] for row in MATRIX]
    full[0][1] = 0.30  # task 2 before training it
    full[1][2] = 0.40  # task 3 before training it
    # ((0.30 - 0.60) + (0.40 - 0.80)) / 2 = -0.35
    assert forward_transfer(full, [0.5, 0.6, 0.8], zero_shot=True) == pytest.approx(-0.35)
    with pytest.raises(ValueError, match=r"a\[1, 2\].*missing"):
        forward_transfer(MATRIX, [0.5, 0.6, 0.8], zero_shot=True)


def test_inputs_may_be_numpy_or_torch():
    assert backward_transfer(np.array(MATRIX)) == pytest.approx(-0.125)
    assert forgetting(torch.tensor(MATRIX, dtype=torch.float64)) == pytest.approx(0.15)


def test_one_task_has_no_transfer_or_forgetting():
    assert average_accuracy([[0.8]]) == pytest.approx(0.8)
    assert math.isnan(backward_transfer([[0.8]]))
    assert math.isnan(forgetting([[0.8]]))
    assert math.isnan(forward_transfer([[0.8]], [0.5]))


def test_bad_matrices_are_refused_with_the_cause():
    with pytest.raises(ValueError, match="2-D"):
        average_accuracy([0.1, 0.2])
    with pytest.raises(ValueError, match="at least as many columns"):
        average_accuracy([[0.1], [0.2]])
    with pytest.raises(ValueError, match=r"a\[2, 1\]"):
        backward_transfer([[0.9, NAN], [NAN, 0.8]])
    with pytest.raises(ValueError, match="one accuracy per task"):
        forward_transfer(MATRIX, [0.5, 0.6])

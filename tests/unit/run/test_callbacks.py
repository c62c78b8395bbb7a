"""The NaN guard and the kill-switch testing aid."""

from __future__ import annotations

import pytest
import torch

from clarena.core.errors import NonFiniteLossError, closest, one_line
from clarena.run.callbacks import KILL_ENV, NonFiniteLossGuard, kill_point


class _Loop:
    global_step = 7


class _Module:
    task_id = 2


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_with_the_cause_and_the_fix(bad: float) -> None:
    guard = NonFiniteLossGuard()
    with pytest.raises(NonFiniteLossError) as info:
        guard.on_loop_step_end(_Loop(), _Module(), {"loss": torch.tensor(bad)}, None, 3)
    text = str(info.value)
    assert text.startswith(f"the training loss became {bad} at task 2, step 7 (batch 3)")
    assert "lower optimizer.lr" in text


def test_finite_loss_and_unchecked_batches_pass() -> None:
    guard = NonFiniteLossGuard(check_every_n_steps=2)
    guard.on_loop_step_end(_Loop(), _Module(), torch.tensor(1.5), None, 0)
    guard.on_loop_step_end(_Loop(), _Module(), torch.tensor(float("nan")), None, 1)
    with pytest.raises(ValueError, match="check_every_n_steps must be >= 1"):
        NonFiniteLossGuard(0)


@pytest.mark.parametrize(
    ("value", "point"),
    [("", None), ("after_task:2", ("after_task", 2, 0)), ("task:3:step:15", ("step", 3, 15))],
)
def test_kill_point_parses_the_environment(
    value: str, point: tuple | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KILL_ENV, value)
    assert kill_point() == point


def test_kill_point_refuses_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KILL_ENV, "task:2")
    with pytest.raises(ValueError, match="use after_task:<t> or task:<t>:step:<s>"):
        kill_point()


def test_one_line_unwraps_instantiation_errors_and_joins_lines() -> None:
    from hydra.errors import InstantiationException

    try:
        try:
            raise KeyError("a\nb")
        except KeyError as inner:
            raise InstantiationException("Error in call to target 'x'") from inner
    except InstantiationException as exc:
        assert one_line(exc) == "KeyError: 'a\\nb'"
    assert one_line(RuntimeError("first\n  second\n")) == "RuntimeError: first second"
    assert closest("lfw", ["lwf", "ewc"]) == " (did you mean 'lwf'?)"
    assert closest("zzz", ["lwf"]) == ""

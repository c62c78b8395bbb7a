"""`CLResults`: the accumulator a continual-learning run feeds with test predictions.

The task loop calls, after training task $t$ and for every test task $j \\le t$,

    results.add(after_task=t, test_task=j, preds=preds, targets=targets,
                preds_task_aware=preds_task_aware)   # the last one in CIL only

with 1-D int64 tensors of predicted and true labels over the *whole* test set of task $j$ (gathered
from every process under DDP, in the same order at every evaluation: test loaders must not shuffle).
From these predictions `CLResults` derives

- the accuracy matrix $a_{t,j}$ (`accuracy_matrix()`), and in CIL the task-aware matrix
  (`accuracy_matrix(task_aware=True)`), and the summary metrics of `clarena.metrics.functional.cl`;
- the compatibility of the model after task $t$ with the model after task $t-1$ on every earlier
  task's test set (`compatibility()`): the counts, NFR, PFR, NFI, BTC, BEC, the error overlap
  (progress = positive flips, errors of the old model the update fixed; common = both wrong;
  regress = negative flips, new errors) and the incompatible points per class. It keeps the
  predictions itself, so no old model is needed;
- with `add_reference(test_task, preds, targets)`, the same comparison of every model against a
  user-supplied old model (the deployed $h_1$ of a model update);
- with `set_reference_accuracy([b_1, ..., b_T])`, forward transfer.

`state_dict()` / `load_state_dict()` hold only tensors, numbers, strings, lists, dicts and `None`
(safe for `torch.load(..., weights_only=True)`), so a resumed run ends with identical results.
`write(results_dir, config)` writes the files described in `clarena.reports.writers`, with the
run's identity and provenance (`clarena.metrics.provenance`).

Wall time per task: the task loop gives it with `set_task_time(task_id, seconds)` (training and
testing of the task). A task it did not time gets the time `CLResults` measured itself: from the
first prediction added after the previous task to the first prediction added after this one
(so the tasks' times add up to the run's time, less what came before the first task).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from clarena.metrics.functional import cl
from clarena.metrics.functional.compatibility import pooled_compatibility

#: Version of the `metrics.json` and `CLResults.state_dict` layouts.
FORMAT_VERSION = 1


def _labels(name: str, value: Any) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of labels, got {type(value).__name__}")
    if value.dim() != 1 or value.is_floating_point() or value.is_complex():
        raise ValueError(
            f"{name} must be a 1-D integer tensor of class labels, got shape "
            f"{tuple(value.shape)} and dtype {value.dtype}; pass logits.argmax(dim=1)"
        )
    return value.detach().to(device="cpu", dtype=torch.int64).clone()


def _task(name: str, value: Any) -> int:
    if isinstance(value, Tensor):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a task number >= 1 (tasks count from 1), got {value!r}")
    return value


class CLResults:
    """Predictions of a continual-learning run and everything computed from them.

    Args:
        scenario: `"TIL"`, `"CIL"`, `"DIL"` or `"DataIL"` (recorded in `metrics.json`), or `None`.
    """

    def __init__(self, scenario: str | None = None) -> None:
        self.scenario = scenario
        self._preds: dict[tuple[int, int], Tensor] = {}
        self._preds_task_aware: dict[tuple[int, int], Tensor] = {}
        self._targets: dict[int, Tensor] = {}
        self._reference_preds: dict[int, Tensor] = {}
        self.reference_name = "reference"
        self.reference_accuracy: list[float] | None = None
        self._task_times: dict[int, float] = {}
        self._timed_by_loop: set[int] = set()
        self._clock = time.monotonic()
        self.algorithm_record: dict[str, Any] = {}
        """What the algorithm reports of its own choices (BCWI's $\\alpha$ per update), written
        to `metrics.json` under `algorithm` (`set_algorithm_record`)."""

    # ----------------------------------------------------------------- feeding
    def _set_targets(self, test_task: int, targets: Tensor, length: int) -> None:
        if targets.numel() != length:
            raise ValueError(
                f"preds and targets of task {test_task} differ in length: {length} vs "
                f"{targets.numel()}"
            )
        known = self._targets.get(test_task)
        if known is None:
            self._targets[test_task] = targets
        elif not torch.equal(known, targets):
            raise ValueError(
                f"the test set of task {test_task} changed between evaluations (other targets or "
                "order); test loaders must not shuffle and must serve the same data every time"
            )

    def add(
        self,
        after_task: int,
        test_task: int,
        preds: Tensor,
        targets: Tensor,
        preds_task_aware: Tensor | None = None,
    ) -> None:
        """Record the predictions on task `test_task`'s whole test set after training `after_task`.

        Args:
            after_task: The task just trained, $t$ (from 1).
            test_task: The task tested, $j$ (normally $j \\le t$).
            preds: `(N,)` predicted labels (task-agnostic in CIL).
            targets: `(N,)` true labels, identical (values and order) at every evaluation of `j`.
            preds_task_aware: `(N,)` predictions restricted to task `j`'s classes (CIL),
                else `None`.

        Raises:
            ValueError: on a bad task number, shape or dtype, changed targets, or a pair
                added twice.
        """
        t, j = _task("after_task", after_task), _task("test_task", test_task)
        if t not in self._task_times:  # the first prediction after task t: t's time is up
            now = time.monotonic()
            self._task_times[t] = now - self._clock
            self._clock = now
        if (t, j) in self._preds:
            raise ValueError(
                f"results for test task {j} after task {t} were already added; add each pair "
                "once, with the predictions on the whole test set"
            )
        preds_ = _labels("preds", preds)
        self._set_targets(j, _labels("targets", targets), preds_.numel())
        if preds_task_aware is not None:
            aware = _labels("preds_task_aware", preds_task_aware)
            if aware.numel() != preds_.numel():
                raise ValueError("preds_task_aware must have the same length as preds")
            self._preds_task_aware[(t, j)] = aware
        self._preds[(t, j)] = preds_

    def add_reference(self, test_task: int, preds: Tensor, targets: Tensor) -> None:
        """Record a user-supplied old model's predictions on task `test_task`'s test set.

        Every model of the run is then also compared with this one (`comparison == "reference"`).
        """
        j = _task("test_task", test_task)
        preds_ = _labels("preds", preds)
        self._set_targets(j, _labels("targets", targets), preds_.numel())
        self._reference_preds[j] = preds_

    def set_reference_accuracy(self, accuracies: Sequence[float], name: str = "reference") -> None:
        """Set $b_t$, a reference model's accuracy on each task (for forward transfer)."""
        values = [float(a) for a in accuracies]
        if not all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            raise ValueError(f"reference accuracies must be fractions in [0, 1], got {values}")
        self.reference_accuracy = values
        self.reference_name = str(name)

    def set_algorithm_record(self, record: Mapping[str, Any]) -> None:
        """Replace the algorithm's record (`CLAlgorithm.results_record()`: numbers, strings,
        lists and dicts), which `metrics.json` holds under `algorithm`; the task loop sets it after
        every task."""
        self.algorithm_record = dict(record)

    def set_task_time(self, task_id: int, seconds: float) -> None:
        """Record the wall-clock time of task `task_id` (training and testing), in seconds.

        The task loop calls it once per task, after the task's tests; the value replaces the time
        `CLResults` measured itself and is written to `metrics.json` (`provenance`).
        """
        t = _task("task_id", task_id)
        value = float(seconds)
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        self._task_times[t] = value
        self._timed_by_loop.add(t)

    @property
    def task_times(self) -> dict[int, float]:
        """Wall-clock seconds of every timed task, by task number."""
        return dict(sorted(self._task_times.items()))

    def _times_measured_by(self) -> str | None:
        if not self._task_times:
            return None
        if self._timed_by_loop >= self._task_times.keys():
            return "task loop"
        if not self._timed_by_loop:
            return "CLResults, between the first tests of consecutive tasks"
        loop = ", ".join(str(t) for t in sorted(self._timed_by_loop))
        return f"task loop (tasks {loop}); CLResults between tests (the others)"

    # ----------------------------------------------------------------- reading
    @property
    def num_tasks(self) -> int:
        """The number of tasks trained so far (the largest `after_task` added)."""
        return max((t for t, _ in self._preds), default=0)

    def predictions(self, after_task: int, test_task: int, task_aware: bool = False) -> Tensor:
        """The predictions on task `test_task` of the model after task `after_task` (a copy).

        Raises:
            KeyError: when that pair was not added.
        """
        store = self._preds_task_aware if task_aware else self._preds
        return store[(int(after_task), int(test_task))].clone()

    def targets(self, test_task: int) -> Tensor:
        """The labels of task `test_task`'s test set (a copy)."""
        return self._targets[int(test_task)].clone()

    def _width(self) -> int:
        return max([self.num_tasks, *self._targets.keys()], default=0)

    def accuracy_matrix(self, task_aware: bool = False) -> np.ndarray:
        """The `(T, K)` accuracy matrix (fractions; NaN where not measured), `K >= T` tasks."""
        store = self._preds_task_aware if task_aware else self._preds
        matrix = np.full((self.num_tasks, self._width()), np.nan)
        for (t, j), preds in store.items():
            targets = self._targets[j]
            if targets.numel():
                matrix[t - 1, j - 1] = float((preds == targets).sum()) / targets.numel()
        return matrix

    @property
    def has_task_aware(self) -> bool:
        """Whether task-aware predictions were given (CIL)."""
        return bool(self._preds_task_aware)

    def summary(self, task_aware: bool = False) -> dict[str, float | None]:
        """Average accuracy, BWT, forgetting and (with a reference) FWT of the current matrix."""
        matrix = self.accuracy_matrix(task_aware)
        if matrix.shape[0] == 0:
            raise ValueError("no results yet: call add(...) after the first task")
        square = matrix[:, : matrix.shape[0]]

        def safe(fn, *args) -> float:  # NaN while a needed entry is missing (mid-task writes)
            try:
                return fn(square, *args)
            except ValueError:
                return float("nan")

        out: dict[str, float | None] = {
            "average_accuracy": safe(cl.average_accuracy),
            "backward_transfer": safe(cl.backward_transfer),
            "forgetting": safe(cl.forgetting),
            "forward_transfer": None,
        }
        if self.reference_accuracy is not None:
            out["forward_transfer"] = safe(cl.forward_transfer, self.reference_accuracy)
        return out

    def _num_classes(self) -> int:
        stores = [*self._targets.values(), *self._preds.values(), *self._reference_preds.values()]
        return max((int(s.max()) + 1 for s in stores if s.numel()), default=1)

    def _row(
        self, comparison: str, old: int | None, new: int, tasks: list[int], pooled: bool = False
    ) -> dict[str, Any]:
        test_sets = [
            (
                self._reference_preds[j] if old is None else self._preds[(old, j)],
                self._preds[(new, j)],
                self._targets[j],
            )
            for j in tasks
        ]
        return {
            "comparison": comparison,
            "old_after_task": old,
            "new_after_task": new,
            "test_task": "all" if pooled else tasks[0],
            "test_tasks": tasks,
            **pooled_compatibility(test_sets, self._num_classes()),
        }

    def compatibility(self) -> list[dict[str, Any]]:
        """One row per (old model, new model, test task), then one pooled row per pair of models.

        `comparison` is `"consecutive"` (model after $t-1$ against model after $t$, on tasks
        $j < t$) or `"reference"` (the model given by `add_reference` against the model after
        $t$; `old_after_task` is `None`). Pooled rows have `test_task == "all"` and sum the counts
        over `test_tasks`. Each row holds the counts, `old_accuracy`, `new_accuracy`, `nfr`,
        `pfr`, `nfi`, `btc`, `bec`, `error_overlap` and `negative_flips_per_class` (by true label).
        """
        rows: list[dict[str, Any]] = []
        for new in range(2, self.num_tasks + 1):
            tasks = [j for j in range(1, new) if {(new - 1, j), (new, j)} <= self._preds.keys()]
            rows += [self._row("consecutive", new - 1, new, [j]) for j in tasks]
            if tasks:
                rows.append(self._row("consecutive", new - 1, new, tasks, pooled=True))
        for new in range(1, self.num_tasks + 1):
            tasks = sorted(j for j in self._reference_preds if (new, j) in self._preds)
            rows += [self._row("reference", None, new, [j]) for j in tasks]
            if tasks:
                rows.append(self._row("reference", None, new, tasks, pooled=True))
        return rows

    def to_dict(self, config: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything `metrics.json` holds (NaN is written as `null`)."""
        from clarena import __version__
        from clarena.metrics.provenance import run_identity

        matrix = self.accuracy_matrix()
        data: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "clarena_version": __version__,
            "run": run_identity(config),
            "scenario": self.scenario,
            "num_tasks": self.num_tasks,
            "accuracy_unit": "fraction of test points classified correctly (0 to 1)",
            "accuracy_matrix": matrix.tolist(),
            "average_accuracy_per_task": cl.average_accuracy_per_task(matrix),
            "summary": self.summary(),
            "reference_accuracy": self.reference_accuracy,
            "reference_name": self.reference_name,
            "compatibility": self.compatibility(),
            "algorithm": self.algorithm_record,
            "config": config,
        }
        if self.has_task_aware:
            aware = self.accuracy_matrix(task_aware=True)
            data["accuracy_matrix_task_aware"] = aware.tolist()
            data["average_accuracy_per_task_task_aware"] = cl.average_accuracy_per_task(aware)
            data["summary_task_aware"] = self.summary(task_aware=True)
        return data

    def record(
        self,
        config: dict[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The content of `metrics.json`: `to_dict(config)` with the names of the labels and the
        provenance (`clarena.reports.writers.write_results` writes it and the tables and plots).

        Args:
            config: The resolved run configuration (plain dicts and lists), stored under
                `config`; the run's identity (`run`) and the names of its labels (`class_names`)
                are read from it.
            provenance: Entries that replace or add to the collected provenance
                (`clarena.metrics.provenance.collect`), stored under `provenance`.
        """
        from clarena.metrics.provenance import collect, label_names_from_config

        data = self.to_dict(config)
        data["class_names"] = label_names_from_config(config)
        data["provenance"] = {
            **collect(config, self._task_times, self._times_measured_by(), self.num_tasks),
            **(provenance or {}),
        }
        return data

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """The predictions as weights-only-safe values (tensors, numbers, strings, lists, dicts)."""
        return {
            "format_version": FORMAT_VERSION,
            "scenario": self.scenario,
            "entries": [
                {
                    "after_task": t,
                    "test_task": j,
                    "preds": preds,
                    "preds_task_aware": self._preds_task_aware.get((t, j)),
                }
                for (t, j), preds in sorted(self._preds.items())
            ],
            "targets": [{"test_task": j, "targets": v} for j, v in sorted(self._targets.items())],
            "reference": [
                {"test_task": j, "preds": v} for j, v in sorted(self._reference_preds.items())
            ],
            "reference_name": self.reference_name,
            "reference_accuracy": self.reference_accuracy,
            "algorithm_record": self.algorithm_record,
            "task_times": [
                {"task": t, "seconds": s, "by_loop": t in self._timed_by_loop}
                for t, s in sorted(self._task_times.items())
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (replacing everything recorded so far)."""
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported CLResults state format {state.get('format_version')!r} "
                f"(this clarena reads format {FORMAT_VERSION})"
            )
        self.__init__(state.get("scenario"))  # type: ignore[misc]
        for item in state["targets"]:
            self._targets[int(item["test_task"])] = item["targets"].to(torch.int64)
        for item in state["entries"]:
            key = (int(item["after_task"]), int(item["test_task"]))
            self._preds[key] = item["preds"].to(torch.int64)
            if item.get("preds_task_aware") is not None:
                self._preds_task_aware[key] = item["preds_task_aware"].to(torch.int64)
        for item in state["reference"]:
            self._reference_preds[int(item["test_task"])] = item["preds"].to(torch.int64)
        self.reference_name = state.get("reference_name", "reference")
        ref = state.get("reference_accuracy")
        self.reference_accuracy = None if ref is None else [float(v) for v in ref]
        self.algorithm_record = dict(state.get("algorithm_record") or {})
        for item in state.get("task_times", []):  # absent in checkpoints of clarena <= 0.1.0
            self._task_times[int(item["task"])] = float(item["seconds"])
            if item.get("by_loop"):
                self._timed_by_loop.add(int(item["task"]))

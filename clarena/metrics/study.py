r"""A study: runs of several methods, scenarios and seeds, reduced to mean ± standard error.

Each finished run (its `results/metrics.json`) gives a `StudyRun`: its method (the algorithm's
class, e.g. `EWC`), dataset, scenario, seed and three final metrics from its summary: the average
accuracy after the last task, the forgetting and the backward transfer (BWT). Runs of one method
and one scenario form a `StudyCell`; over its $n$ runs each metric $x$ is reported as

$$ \bar x = \frac1n \sum_{i=1}^n x_i, \qquad
   \mathrm{SE} = \frac{s}{\sqrt n}, \quad s^2 = \frac{1}{n-1} \sum_{i=1}^n (x_i - \bar x)^2 , $$

the standard error of the mean over seeds (undefined, `None`, for a single run). A run whose
metric is missing (e.g. no forgetting after one task) is left out of that metric's estimate
only. The rendering (CSV, Markdown, HTML) is `clarena.reports.study`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METRICS: tuple[tuple[str, str], ...] = (
    ("average_accuracy", "final average accuracy"),
    ("forgetting", "forgetting"),
    ("backward_transfer", "BWT"),
)
"""The summary keys a study reports, with their display names."""

SCENARIO_ORDER: tuple[str, ...] = ("TIL", "DIL", "CIL", "DataIL")
"""The order of the scenario columns (others follow alphabetically)."""


@dataclass(frozen=True)
class StudyRun:
    """One finished run, reduced to what a study needs.

    Attributes:
        run_dir: the run's folder.
        results_dir: its folder holding `metrics.json`.
        method: the algorithm's class name (`_target_`'s last part).
        dataset: the dataset's source (e.g. `mnist`), or `"?"` when not recorded.
        scenario: `TIL`, `DIL`, `CIL` or `DataIL`.
        seed: the run's seed, or None when not recorded.
        values: metric key → value (None when the run has none).
    """

    run_dir: Path
    results_dir: Path
    method: str
    dataset: str
    scenario: str
    seed: int | None
    values: dict[str, float | None]


@dataclass(frozen=True)
class Estimate:
    """A mean and its standard error over $n$ values (`standard_error` is None for $n < 2$): one
    metric over a study cell's runs, or over the seeds of a sweep's setting
    (`clarena.metrics.sweep_summary`)."""

    mean: float | None
    standard_error: float | None
    n: int


@dataclass(frozen=True)
class StudyCell:
    """The runs of one method in one scenario and their estimates (metric key → `Estimate`)."""

    method: str
    scenario: str
    runs: tuple[StudyRun, ...]
    estimates: dict[str, Estimate]

    @property
    def seeds(self) -> list[int | None]:
        """The runs' seeds, in the runs' order."""
        return [r.seed for r in self.runs]

    @property
    def num_seeds(self) -> int:
        """How many different seeds the cell holds."""
        return len(set(self.seeds))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def mean_and_standard_error(values: Iterable[float | None]) -> Estimate:
    """$\\bar x$ and $s / \\sqrt n$ of the values that are not None (see the module docstring)."""
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if n == 0:
        return Estimate(None, None, 0)
    mean = math.fsum(xs) / n
    if n == 1:
        return Estimate(mean, None, 1)
    variance = math.fsum((x - mean) ** 2 for x in xs) / (n - 1)
    return Estimate(mean, math.sqrt(variance / n), n)


def _dict_or_empty(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def study_run(run_dir: Path, results_dir: Path, data: dict[str, Any]) -> StudyRun:
    """Reduce one run's `metrics.json` contents (with its config) to a `StudyRun`.

    Raises:
        ValueError: when the file holds no scenario or summary, or the run trained fewer tasks
            than its dataset has (a run in progress or interrupted: its results are written after
            every task, and would count as final).
    """
    config = _dict_or_empty(data.get("config"))
    summary = data.get("summary")
    scenario = data.get("scenario", config.get("scenario"))
    if not isinstance(summary, dict) or not isinstance(scenario, str):
        raise ValueError("no scenario or summary in metrics.json")
    algorithm = _dict_or_empty(config.get("cl_algorithm"))
    dataset = _dict_or_empty(config.get("cl_dataset"))
    trained, planned = data.get("num_tasks"), dataset.get("num_tasks")
    if isinstance(trained, int) and isinstance(planned, int) and trained < planned:
        raise ValueError(
            f"unfinished: {trained} of {planned} tasks trained (a run in progress or interrupted)"
        )
    seed = config.get("seed")
    return StudyRun(
        run_dir=run_dir,
        results_dir=results_dir,
        method=str(algorithm.get("_target_", "unknown")).rsplit(".", 1)[-1],
        dataset=str(dataset.get("source", "?")),
        scenario=scenario,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        values={key: _number(summary.get(key)) for key, _ in METRICS},
    )


def _scenario_key(scenario: str) -> tuple[int, str]:
    order = SCENARIO_ORDER.index(scenario) if scenario in SCENARIO_ORDER else len(SCENARIO_ORDER)
    return order, scenario


def scenarios_of(cells: Sequence[StudyCell]) -> list[str]:
    """The scenarios present, in `SCENARIO_ORDER`."""
    return sorted({c.scenario for c in cells}, key=_scenario_key)


def methods_of(cells: Sequence[StudyCell]) -> list[str]:
    """The methods present, in the order of the cells."""
    return list(dict.fromkeys(c.method for c in cells))


def aggregate(runs: Sequence[StudyRun]) -> list[StudyCell]:
    """Group `runs` by method and scenario, each with its estimates, sorted by method then
    scenario. When the runs come from more than one dataset the method is labelled
    `"<method> (<dataset>)"` so that datasets are never pooled."""
    several = len({r.dataset for r in runs}) > 1
    groups: dict[tuple[str, str], list[StudyRun]] = {}
    for run in runs:
        method = f"{run.method} ({run.dataset})" if several else run.method
        groups.setdefault((method, run.scenario), []).append(run)
    cells = []
    for (method, scenario), members in groups.items():
        members.sort(key=lambda r: (r.seed is None, r.seed or 0, str(r.run_dir)))
        estimates = {
            key: mean_and_standard_error(r.values[key] for r in members) for key, _ in METRICS
        }
        cells.append(StudyCell(method, scenario, tuple(members), estimates))
    cells.sort(key=lambda c: (c.method.lower(), _scenario_key(c.scenario)))
    return cells

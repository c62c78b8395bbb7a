r"""A study: runs of several methods, settings, scenarios and seeds, as mean ± standard error.

Each finished run (its `results/metrics.json`) gives a `StudyRun`: its method (the algorithm's
class, e.g. `EWC`; a YAML composition by its terms, `Composed(ce, ewc, distillation)`), dataset,
scenario, seed, setting (its resolved config less the seed and paths: `clarena.metrics.replicates`)
and three final metrics from its summary: the average accuracy after the last task, the forgetting
and the backward transfer (BWT). The replicates of one setting in one scenario form a `StudyCell`,
so runs that differ in anything but the seed and paths are never pooled; a method with several
settings has one row per setting, labelled by what differs (`distillation_factor=0.5`). A seed
that occurs twice in a cell (a run copied or repeated) counts once: the first run in path order is
kept and the others are listed in `StudyCell.repeated`. Over a cell's $n$ runs each metric $x$ is
reported as

$$ \bar x = \frac1n \sum_{i=1}^n x_i, \qquad
   \mathrm{SE} = \frac{s}{\sqrt n}, \quad s^2 = \frac{1}{n-1} \sum_{i=1}^n (x_i - \bar x)^2 , $$

the standard error of the mean over seeds (undefined, `None`, for a single run). A run whose
metric is missing (e.g. no forgetting after one task) is left out of that metric's estimate
only. The rendering (CSV, Markdown, HTML) is `clarena.reports.study`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarena.metrics.replicates import (
    Setting,
    differing_keys,
    setting_labels,
    setting_of,
)

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
        method: the algorithm's class name (`_target_`'s last part; a composition with its
            terms, `Composed(ce, ewc)`).
        dataset: the dataset's source (e.g. `mnist`), or `"?"` when not recorded.
        scenario: `TIL`, `DIL`, `CIL` or `DataIL`.
        seed: the run's seed, or None when not recorded.
        values: metric key → value (None when the run has none).
        setting: the config less seed, paths and scenario (`clarena.metrics.replicates`).
        name: the run's `experiment_name`, or None.
    """

    run_dir: Path
    results_dir: Path
    method: str
    dataset: str
    scenario: str
    seed: int | None
    values: dict[str, float | None]
    setting: Setting = ()
    name: str | None = None


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
    """The replicates of one setting of a method in one scenario and their estimates (metric key
    → `Estimate`); `setting` names the setting among the method's others (empty when the method
    has one setting), `repeated` the runs left out because their seed was already counted."""

    method: str
    scenario: str
    runs: tuple[StudyRun, ...]
    estimates: dict[str, Estimate]
    setting: str = ""
    repeated: tuple[StudyRun, ...] = ()

    @property
    def row(self) -> str:
        """The cell's row label: `LwF` or `LwF · distillation_factor=0.5`."""
        return f"{self.method} · {self.setting}" if self.setting else self.method

    @property
    def seeds(self) -> list[int | None]:
        """The counted runs' seeds, in the runs' order."""
        return [r.seed for r in self.runs]

    @property
    def num_seeds(self) -> int:
        """How many runs the cell counts (each seed once; runs without a seed each count)."""
        return len(self.runs)


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
    seed, name = config.get("seed"), config.get("experiment_name")
    return StudyRun(
        run_dir=run_dir,
        results_dir=results_dir,
        method=method_name(algorithm),
        dataset=str(dataset.get("source", "?")),
        scenario=scenario,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        values={key: _number(summary.get(key)) for key, _ in METRICS},
        setting=setting_of(config),
        name=name if isinstance(name, str) else None,
    )


def method_name(algorithm: dict[str, Any]) -> str:
    """The class of `_target_` (`EWC`); a composition with its term names,
    `Composed(ce, ewc, distillation)`."""
    method = str(algorithm.get("_target_", "unknown")).rsplit(".", 1)[-1]
    terms = algorithm.get("terms")
    if isinstance(terms, dict) and terms:
        method += f"({', '.join(str(t) for t in terms)})"
    return method


def _scenario_key(scenario: str) -> tuple[int, str]:
    order = SCENARIO_ORDER.index(scenario) if scenario in SCENARIO_ORDER else len(SCENARIO_ORDER)
    return order, scenario


def scenarios_of(cells: Sequence[StudyCell]) -> list[str]:
    """The scenarios present, in `SCENARIO_ORDER`."""
    return sorted({c.scenario for c in cells}, key=_scenario_key)


def _natural(label: str) -> list[tuple[int, float | str]]:
    """A sort key that orders `factor=2` before `factor=10`."""
    parts = re.split(r"(\d+(?:\.\d+)?)", label)
    return [(0, float(p)) if i % 2 else (1, p) for i, p in enumerate(parts)]


def rows_of(cells: Sequence[StudyCell]) -> list[str]:
    """The row labels present, in the order of the cells."""
    return list(dict.fromkeys(c.row for c in cells))


def _counted_once(members: list[StudyRun]) -> tuple[list[StudyRun], list[StudyRun]]:
    """`members` (sorted) split into the runs counted and those whose seed came earlier."""
    counted: list[StudyRun] = []
    repeated: list[StudyRun] = []
    seen: set[int] = set()
    for run in members:
        if run.seed is not None and run.seed in seen:
            repeated.append(run)
            continue
        if run.seed is not None:
            seen.add(run.seed)
        counted.append(run)
    return counted, repeated


def aggregate(runs: Sequence[StudyRun]) -> list[StudyCell]:
    """Group `runs` into cells of replicates (method, scenario and setting equal), each with its
    estimates over its seeds counted once, sorted by row then scenario. When the runs come from
    more than one dataset the method is labelled `"<method> (<dataset>)"`; a method with several
    settings in one scenario gets a row per setting, labelled by the keys that differ."""
    several = len({r.dataset for r in runs}) > 1
    groups: dict[tuple[str, str, Setting], list[StudyRun]] = {}
    for run in runs:
        method = f"{run.method} ({run.dataset})" if several else run.method
        groups.setdefault((method, run.scenario, run.setting), []).append(run)
    labels: dict[tuple[str, Setting], str] = {}
    for method in dict.fromkeys(m for m, _, _ in groups):
        per_scenario: dict[str, list[Setting]] = {}
        names: dict[Setting, set[str]] = {}
        for m, scenario, setting in groups:
            if m == method:
                per_scenario.setdefault(scenario, []).append(setting)
                names.setdefault(setting, set()).update(
                    r.name for r in groups[(m, scenario, setting)] if r.name
                )
        settings = list(names)
        keys = differing_keys(per_scenario.values())
        found = setting_labels(settings, keys, [names[s] for s in settings])
        labels.update({(method, s): label for s, label in zip(settings, found, strict=True)})
    cells = []
    for (method, scenario, setting), members in groups.items():
        members.sort(key=lambda r: (r.seed is None, r.seed or 0, str(r.run_dir)))
        counted, repeated = _counted_once(members)
        estimates = {
            key: mean_and_standard_error(r.values[key] for r in counted) for key, _ in METRICS
        }
        label = labels[(method, setting)]
        cells.append(StudyCell(method, scenario, tuple(counted), estimates, label, tuple(repeated)))
    cells.sort(key=lambda c: (c.method.lower(), _natural(c.setting), _scenario_key(c.scenario)))
    return cells

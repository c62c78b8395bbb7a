r"""The points of a $\lambda_c$ sweep: one run's numbers, read from its `metrics.json`.

A sweep folder is what Hydra's multirun writes: numbered subfolders `0/`, `1/`, … each holding one
run with `results/metrics.json`. Each run becomes one `SweepPoint`: its algorithm (the last part of
`cl_algorithm._target_` in the run's resolved config), its $\lambda_c$ (`cl_algorithm.lambda_c`),
and the compatibility of its final model with the old model:

- against the user-supplied old model when the run recorded one (`comparison == "reference"`),
- otherwise the last update, the model after task $T-1$ against the model after task $T$,

pooled over the test sets of the compared tasks. `accuracy` is the new model's accuracy on those
same test points and `old_accuracy` the old model's, so a point's BTC, BEC and accuracy are measured
on one set of points and the old model's accuracy is the reference line of the trade-off plots
(`clarena.reports.sweep_plots`). The mean over seeds is `clarena.metrics.sweep_summary`; the
page and `sweep.csv` are `clarena.reports.sweep`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarena.metrics.results import FORMAT_VERSION


@dataclass
class SweepPoint:
    """One run of a sweep, reduced to what the sweep report shows."""

    name: str
    algorithm: str
    kind: str
    lambda_c: float | None
    comparison: str
    accuracy: float | None
    old_accuracy: float | None
    btc: float | None
    bec: float | None
    nfr: float | None
    pfr: float | None
    average_accuracy: float | None
    error_overlap: dict[str, int] = field(default_factory=dict)
    nfi: float | None = None
    negative_flips_per_class: list[int] = field(default_factory=list)
    seed: int | None = None
    hyper_parameters: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    setting: str = ""

    @property
    def label(self) -> str:
        """A short label: `λc=0.5` (or the run folder when λc is unknown)."""
        return self.name if self.lambda_c is None else f"λc={self.lambda_c:g}"


def load_metrics(results_dir: Path) -> dict[str, Any]:
    """Read `results_dir/metrics.json`, with a one-line error when it is not valid."""
    path = results_dir / "metrics.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path}: {error}; re-run the experiment") from error
    required = ("accuracy_matrix", "average_accuracy_per_task", "summary", "compatibility")
    missing = [key for key in required if not isinstance(data, dict) or key not in data]
    if missing:
        raise ValueError(f"{path} is not a clarena metrics file (no {', '.join(missing)})")
    if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format {data['format_version']}, newer than this clarena reads "
            f"({FORMAT_VERSION}); upgrade clarena"
        )
    return data


def run_config(run_dir: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The run's resolved config: from `metrics.json`, else from Hydra's `.hydra/config.yaml`."""
    if isinstance(data.get("config"), dict):
        return data["config"]
    hydra_config = run_dir / ".hydra" / "config.yaml"
    if hydra_config.is_file():
        from omegaconf import OmegaConf

        config = OmegaConf.load(hydra_config)
        try:
            return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
        except Exception:  # an interpolation that needs Hydra's runtime
            return OmegaConf.to_container(config, resolve=False)  # type: ignore[return-value]
    return {}


def algorithm_kind(target: str, distance: Any = None) -> str:
    """`"new_error"`, `"strict_imitation"`, `"focal_kl"`, `"focal_lm"` or `"other"` from a
    `_target_` such as `clarena.cl_algorithms.BCNewError` (and, for focal distillation, the
    `distance` of its config, `"kl"` by default)."""
    name = target.rsplit(".", 1)[-1].lower()
    if "focaldistillation" in name:
        return "focal_lm" if distance == "lm" else "focal_kl"
    if "strictimitation" in name:
        return "strict_imitation"
    if "newerror" in name:
        return "new_error"
    return "other"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def final_comparison(data: dict[str, Any]) -> dict[str, Any] | None:
    """The pooled compatibility row of the final model (see the module docstring)."""
    last = data.get("num_tasks")
    pooled = [r for r in data.get("compatibility", []) if r.get("test_task") == "all"]
    for comparison in ("reference", "consecutive"):
        rows = [r for r in pooled if r["comparison"] == comparison and r["new_after_task"] == last]
        if rows:
            return rows[0]
    return None


def sweep_point(name: str, run_dir: Path, data: dict[str, Any]) -> SweepPoint:
    """Reduce one run's `metrics.json` to a `SweepPoint`."""
    config = run_config(run_dir, data)
    algorithm_config = config.get("cl_algorithm") or {}
    target = str(algorithm_config.get("_target_", "unknown"))
    row = final_comparison(data) or {}
    seed = config.get("seed")
    return SweepPoint(
        name=name,
        algorithm=target.rsplit(".", 1)[-1],
        kind=algorithm_kind(target, algorithm_config.get("distance")),
        lambda_c=_number(algorithm_config.get("lambda_c")),
        comparison=str(row.get("comparison", "none")),
        accuracy=_number(row.get("new_accuracy")),
        old_accuracy=_number(row.get("old_accuracy")),
        btc=_number(row.get("btc")),
        bec=_number(row.get("bec")),
        nfr=_number(row.get("nfr")),
        pfr=_number(row.get("pfr")),
        nfi=_number(row.get("nfi")),
        average_accuracy=_number((data.get("summary") or {}).get("average_accuracy")),
        error_overlap=dict(row.get("error_overlap") or {}),
        negative_flips_per_class=list(row.get("negative_flips_per_class") or []),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        hyper_parameters={
            key: value
            for key, value in algorithm_config.items()
            if key not in _NOT_HYPER_PARAMETERS and isinstance(value, (bool, int, float, str))
        },
        run_dir=Path(run_dir),
    )


#: `cl_algorithm` keys that do not tell settings apart (the strength is its own column).
_NOT_HYPER_PARAMETERS = ("_target_", "lambda_c", "buffer_seed")


def name_settings(points: list[SweepPoint]) -> None:
    r"""Set each point's `setting`: the hyper-parameters (other than $\lambda_c$ and the seed)
    whose values differ between the points of its algorithm, as `key=value` text."""
    by_algorithm: dict[str, list[SweepPoint]] = {}
    for p in points:
        by_algorithm.setdefault(p.algorithm, []).append(p)
    for members in by_algorithm.values():
        keys = sorted({k for p in members for k in p.hyper_parameters})
        varying = [k for k in keys if len({repr(p.hyper_parameters.get(k)) for p in members}) > 1]
        for p in members:
            p.setting = " ".join(f"{k}={p.hyper_parameters.get(k)}" for k in varying)

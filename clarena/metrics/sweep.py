r"""The points of a $\lambda_c$ sweep and its trade-off plots, for `clarena report`.

A sweep folder is what Hydra's multirun writes: numbered subfolders `0/`, `1/`, … each holding one
run with `results/metrics.json`. Each run becomes one `SweepPoint`: its algorithm (the last part of
`cl_algorithm._target_` in the run's resolved config), its $\lambda_c$ (`cl_algorithm.lambda_c`),
and the compatibility of its final model with the old model:

- against the user-supplied old model when the run recorded one (`comparison == "reference"`),
- otherwise the last update, the model after task $T-1$ against the model after task $T$,

pooled over the test sets of the compared tasks. `accuracy` is the new model's accuracy on those
same test points and `old_accuracy` the old model's, so a point's BTC, BEC and accuracy are measured
on one set of points and the old model's accuracy is the reference line of the trade-off plots.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from clarena.metrics.plots import png_bytes

#: How the points of each kind of algorithm are drawn: (legend label, marker, colour, in words).
KIND_STYLE: dict[str, tuple[str, str, str, str]] = {
    "new_error": ("new-error (BCNewError)", "o", "#1f77b4", "blue circles"),
    "strict_imitation": ("strict imitation (StrictImitation)", "^", "#d62728", "red triangles"),
    "other": ("other algorithm", "s", "#7f7f7f", "grey squares"),
}


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
    negative_flips_per_class: list[int] = field(default_factory=list)

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
    if not isinstance(data, dict) or "accuracy_matrix" not in data:
        raise ValueError(f"{path} is not a clarena metrics file (no accuracy_matrix)")
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


def algorithm_kind(target: str) -> str:
    """`"new_error"`, `"strict_imitation"` or `"other"` from a `_target_` such as
    `clarena.cl_algorithms.BCNewError`."""
    name = target.rsplit(".", 1)[-1].lower()
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
    algorithm_config = run_config(run_dir, data).get("cl_algorithm") or {}
    target = str(algorithm_config.get("_target_", "unknown"))
    row = final_comparison(data) or {}
    return SweepPoint(
        name=name,
        algorithm=target.rsplit(".", 1)[-1],
        kind=algorithm_kind(target),
        lambda_c=_number(algorithm_config.get("lambda_c")),
        comparison=str(row.get("comparison", "none")),
        accuracy=_number(row.get("new_accuracy")),
        old_accuracy=_number(row.get("old_accuracy")),
        btc=_number(row.get("btc")),
        bec=_number(row.get("bec")),
        nfr=_number(row.get("nfr")),
        pfr=_number(row.get("pfr")),
        average_accuracy=_number((data.get("summary") or {}).get("average_accuracy")),
        error_overlap=dict(row.get("error_overlap") or {}),
        negative_flips_per_class=list(row.get("negative_flips_per_class") or []),
    )


def tradeoff_png(points: list[SweepPoint], metric: str) -> bytes:
    """Accuracy of the new model against BTC or BEC (`metric`), one marker per run, labelled by
    $\\lambda_c$, with the old model's accuracy as a dashed reference line."""
    title = {"btc": "backward trust compatibility BTC", "bec": "backward error compatibility BEC"}
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for kind, (label, marker, color, _) in KIND_STYLE.items():
        chosen = [p for p in points if p.kind == kind and p.accuracy is not None]
        chosen = [p for p in chosen if getattr(p, metric) is not None]
        if not chosen:
            continue
        xs = [getattr(p, metric) * 100 for p in chosen]
        ys = [p.accuracy * 100 for p in chosen]
        ax.scatter(xs, ys, marker=marker, color=color, s=55, label=label, zorder=3)
        for p, x, y in zip(chosen, xs, ys):
            ax.annotate(p.label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    old = [p.old_accuracy for p in points if p.old_accuracy is not None]
    if old:
        mean_old = sum(old) / len(old) * 100
        spread = "" if max(old) - min(old) < 1e-12 else ", mean over runs"
        ax.axhline(
            mean_old,
            color="black",
            linestyle="--",
            linewidth=1,
            zorder=2,
            label=f"old model ({mean_old:.1f}%{spread})",
        )
    ax.set_xlabel(f"{title[metric]} (%)")
    ax.set_ylabel("new model accuracy (%)")
    ax.set_title(f"Accuracy against {metric.upper()} across the sweep")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15, y=0.15)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no run has a model update to compare", ha="center", va="center")
    return png_bytes(fig)


def error_overlap_png(points: list[SweepPoint]) -> bytes:
    """Stacked bars per run: progress (errors fixed), common (both wrong), regress (new errors)."""
    fig = Figure(figsize=(6.4, 0.45 * max(len(points), 3) + 1.6))
    ax = fig.add_subplot()
    labels = [f"{p.name}: {p.algorithm} {p.label}" for p in points]
    left = [0] * len(points)
    parts = (("progress", "#2ca02c"), ("common", "#7f7f7f"), ("regress", "#d62728"))
    for part, color in parts:
        values = [int(p.error_overlap.get(part, 0)) for p in points]
        bars = ax.barh(labels, values, left=left, color=color, label=part)
        ax.bar_label(bars, labels=[str(v) if v else "" for v in values], label_type="center")
        left = [a + b for a, b in zip(left, values)]
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("test points (count)")
    ax.set_title("Error overlap of each run's update")
    ax.legend(loc="lower right", fontsize=8)
    return png_bytes(fig)


def incompatible_per_class_png(points: list[SweepPoint]) -> bytes:
    """Heat map of the negative flips per true class (columns) of each run (rows)."""
    width = max((len(p.negative_flips_per_class) for p in points), default=0) or 1
    grid = [
        p.negative_flips_per_class + [0] * (width - len(p.negative_flips_per_class)) for p in points
    ]
    fig = Figure(figsize=(min(1.0 + 0.5 * width, 14) + 2.5, 0.45 * max(len(points), 3) + 1.6))
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="Reds", aspect="auto", vmin=0)
    colorbar = fig.colorbar(image, ax=ax, pad=0.02)
    colorbar.set_label("incompatible points (count)")
    colorbar.locator = MaxNLocator(integer=True)
    colorbar.update_ticks()
    if width <= 20:
        top = max((max(row) for row in grid if row), default=0)
        for r, row in enumerate(grid):
            for c, value in enumerate(row):
                color = "white" if top and value > 0.6 * top else "black"
                ax.text(c, r, str(value), ha="center", va="center", fontsize=8, color=color)
    if width <= 30:
        ax.set_xticks(range(width), [str(c) for c in range(width)])
    ax.set_yticks(range(len(points)), [f"{p.name}: {p.algorithm} {p.label}" for p in points])
    ax.set_xlabel("true class (label)")
    ax.set_title("Incompatible points per class (negative flips)")
    return png_bytes(fig)

"""The PNG plots of a sweep: accuracy against BTC and BEC, error overlap, incompatible points.

Each function takes the `clarena.metrics.sweep.SweepPoint`s of a sweep and returns PNG bytes,
drawn on matplotlib's Agg canvas (no display needed). Rates and accuracies are plotted in percent.
"""

from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from clarena.metrics.sweep import SweepPoint
from clarena.metrics.sweep_summary import EnsembleReference
from clarena.reports.plots import percent, png_bytes

#: How the points of each kind of algorithm are drawn: (legend label, marker, colour, in words).
KIND_STYLE: dict[str, tuple[str, str, str, str]] = {
    "new_error": ("new-error (BCNewError)", "o", "#1f77b4", "blue circles"),
    "strict_imitation": ("strict imitation (StrictImitation)", "^", "#d62728", "red triangles"),
    "focal_kl": ("focal distillation FD-KL", "D", "#2ca02c", "green diamonds"),
    "focal_lm": ("focal distillation FD-LM", "v", "#9467bd", "purple down-triangles"),
    "other": ("other algorithm", "s", "#7f7f7f", "grey squares"),
}


def tradeoff_png(
    points: list[SweepPoint], metric: str, ensemble: EnsembleReference | None = None
) -> bytes:
    """Accuracy of the new model against BTC or BEC (`metric`), one marker per run, labelled by
    $\\lambda_c$, with the old model's accuracy as a dashed reference line."""
    title = {"btc": "backward trust compatibility BTC", "bec": "backward error compatibility BEC"}
    if metric not in title:
        raise ValueError(f"metric must be 'btc' or 'bec', got {metric!r}")
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    for kind, (label, marker, color, _) in KIND_STYLE.items():
        placed = [(p, percent(getattr(p, metric)), percent(p.accuracy)) for p in points]
        placed = [(p, x, y) for p, x, y in placed if p.kind == kind and math.isfinite(x + y)]
        if not placed:
            continue
        chosen = [p for p, _, _ in placed]
        xs, ys = [x for _, x, _ in placed], [y for _, _, y in placed]
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
    if metric == "btc":
        if ensemble is not None and ensemble.btc.mean is not None:
            ax.axvline(
                ensemble.btc.mean * 100,
                color="#ff7f0e",
                linestyle=":",
                linewidth=1.5,
                zorder=2,
                label=f"ensemble of {ensemble.members} λc=0 updates (acc. "
                f"{ensemble.accuracy * 100:.1f}%)",
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
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16 - 0.6 / (len(points) + 3)), ncol=3)
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

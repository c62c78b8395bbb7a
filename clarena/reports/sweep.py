r"""The report page of a $\lambda_c$ sweep and its `sweep.csv`, for `clarena report`.

The runs of a sweep are reduced to `clarena.metrics.sweep.SweepPoint`s and, over seeds, to
`clarena.metrics.sweep_summary.SweepGroup`s (the math); this module writes them out: `sweep_page`
renders the page (trade-off plots of `clarena.reports.sweep_plots`, the table of runs, the mean
over seeds with the Pareto front and the ensemble reference, error overlap and incompatible points
per class), `sweep_csv` the table of runs as CSV.
"""

from __future__ import annotations

import csv
import html
import io

from clarena.metrics.study import Estimate
from clarena.metrics.sweep import SweepPoint, name_settings
from clarena.metrics.sweep_summary import EnsembleReference, aggregate
from clarena.reports.html import figure, page, pct, table
from clarena.reports.sweep_plots import KIND_STYLE


def _estimate(value: Estimate, scale: float = 100.0, signed: bool = False) -> str:
    if value.mean is None:
        return "–"
    text = f"{value.mean * scale:+.2f}" if signed else f"{value.mean * scale:.2f}"
    if value.standard_error is None:
        return text
    return f"{text} ± {value.standard_error * scale:.2f}"


def seed_summary(points: list[SweepPoint], ensemble: EnsembleReference | None = None) -> list[str]:
    """The page section of a sweep over seeds: mean ± standard error per setting, the Pareto
    front, and the ensemble reference line (nothing when no setting has two seeds)."""
    name_settings(points)
    groups = aggregate(points)
    if not any(g.accuracy.n >= 2 for g in groups):
        return []
    body = [
        "<h2>Mean over seeds</h2>",
        '<p class="meta">mean ± standard error over the seeds of each setting; changes are paired '
        "with the λc = 0 run of the same seed (relative NFR change: mean NFR difference over the "
        "baseline's mean NFR); ★: on the Pareto front of accuracy and NFR</p>",
        table(
            [
                "setting",
                "seeds",
                "new acc. (%)",
                "NFR (%)",
                "Δ acc. (points)",
                "Δ NFR (rel. %)",
                "Pareto",
            ],
            [
                [
                    g.label,
                    g.accuracy.n,
                    _estimate(g.accuracy),
                    _estimate(g.nfr),
                    _estimate(g.accuracy_change, signed=True),
                    _estimate(g.nfr_relative_change, signed=True),
                    "★" if g.pareto else "",
                ]
                for g in groups
            ],
            text_columns=1,
        ),
    ]
    if ensemble is not None:
        body.append(
            '<p class="note">Ensemble reference (PCT): the averaged softmax of the '
            f"{ensemble.members} λc = 0 updates has accuracy {ensemble.accuracy * 100:.2f}% and "
            "NFR "
            f"{_estimate(ensemble.nfr)}% against the members' old models (BTC "
            f"{_estimate(ensemble.btc)}%), where each update alone has NFR "
            f"{_estimate(ensemble.member_nfr)}%.</p>"
        )
    return body


def sweep_page(
    points: list[SweepPoint],
    pngs: dict[str, bytes],
    skipped: list[str],
    title: str,
    ensemble: EnsembleReference | None = None,
) -> str:
    """The report page of a sweep: trade-off plots, error overlap and incompatible points."""
    comparisons = sorted({p.comparison for p in points})
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{len(points)} runs · compared: '
        f"{html.escape(', '.join(comparisons))} (the final model against the user-supplied old "
        "model when recorded, else against the model before the last task)</p>",
    ]
    if skipped:
        body.append(
            '<p class="note">Skipped (unfinished or unreadable): '
            f"{html.escape('; '.join(skipped))}</p>"
        )
    legend = "; ".join(f"{style[3]}: {style[0]}" for style in KIND_STYLE.values())
    body += [
        "<h2>Accuracy against compatibility</h2>",
        '<div class="plots">',
        figure(
            pngs["tradeoff_btc.png"],
            "accuracy against BTC",
            f"Each marker is a run labelled with its λc ({legend}); the dashed line is the "
            "old model's accuracy on the same test points.",
        ),
        figure(
            pngs["tradeoff_bec.png"],
            "accuracy against BEC",
            "BEC = #(both wrong)/#(new wrong): how much the new errors coincide with old ones.",
        ),
        "</div>",
        "<h2>Runs</h2>",
        table(
            [
                "run",
                "algorithm",
                "λc",
                "new acc. (%)",
                "old acc. (%)",
                "BTC (%)",
                "BEC (%)",
                "NFR (%)",
                "PFR (%)",
                "NFI (%)",
                "progress",
                "common",
                "regress",
                "avg. acc. all tasks (%)",
            ],
            [
                [
                    p.name,
                    p.algorithm,
                    "–" if p.lambda_c is None else f"{p.lambda_c:g}",
                    pct(p.accuracy),
                    pct(p.old_accuracy),
                    pct(p.btc),
                    pct(p.bec),
                    pct(p.nfr),
                    pct(p.pfr),
                    pct(p.nfi),
                    p.error_overlap.get("progress", "–"),
                    p.error_overlap.get("common", "–"),
                    p.error_overlap.get("regress", "–"),
                    pct(p.average_accuracy),
                ]
                for p in points
            ],
            text_columns=2,
        ),
        *seed_summary(points, ensemble),
        "<h2>Error overlap and incompatible points</h2>",
        '<div class="plots">',
        figure(
            pngs["error_overlap.png"],
            "error overlap per run",
            "progress: old errors the update fixed; common: wrong before and after; "
            "regress: new errors (negative flips).",
        ),
        figure(
            pngs["incompatible_per_class.png"],
            "incompatible points per class",
            "Negative flips of each run by true class.",
        ),
        "</div>",
    ]
    width = max((len(p.negative_flips_per_class) for p in points), default=0)
    body.append(
        table(
            ["run", *(f"class {c}" for c in range(width))],
            [
                [
                    f"{p.name}: {p.algorithm} {p.label}",
                    *p.negative_flips_per_class,
                    *[0] * (width - len(p.negative_flips_per_class)),
                ]
                for p in points
            ],
        )
    )
    return page(title, body)


def sweep_csv(points: list[SweepPoint]) -> str:
    """The runs of a sweep as CSV text: one row per run, rates and accuracies as fractions."""
    columns = ["run", "algorithm", "kind", "lambda_c", "comparison", "accuracy", "old_accuracy"]
    columns += ["btc", "bec", "nfr", "pfr", "nfi", "average_accuracy"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*columns, "progress", "common", "regress", "negative_flips_per_class"])
    for p in points:
        values = [p.name, *(getattr(p, c) for c in columns[1:])]
        overlap = [p.error_overlap.get(k, "") for k in ("progress", "common", "regress")]
        per_class = " ".join(str(v) for v in p.negative_flips_per_class)
        writer.writerow(["" if v is None else v for v in values] + overlap + [per_class])
    return out.getvalue()

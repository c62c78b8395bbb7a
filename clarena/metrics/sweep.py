r"""The points of a $\lambda_c$ sweep and the sweep's report page, for `clarena report`.

A sweep folder is what Hydra's multirun writes: numbered subfolders `0/`, `1/`, … each holding one
run with `results/metrics.json`. Each run becomes one `SweepPoint`: its algorithm (the last part of
`cl_algorithm._target_` in the run's resolved config), its $\lambda_c$ (`cl_algorithm.lambda_c`),
and the compatibility of its final model with the old model:

- against the user-supplied old model when the run recorded one (`comparison == "reference"`),
- otherwise the last update, the model after task $T-1$ against the model after task $T$,

pooled over the test sets of the compared tasks. `accuracy` is the new model's accuracy on those
same test points and `old_accuracy` the old model's, so a point's BTC, BEC and accuracy are measured
on one set of points and the old model's accuracy is the reference line of the trade-off plots
(`clarena.metrics.sweep_plots`). `sweep_page` renders the page.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clarena.metrics.html import figure, page, pct, table
from clarena.metrics.sweep_plots import KIND_STYLE
from clarena.metrics.sweep_summary import Estimate, aggregate, ensemble_reference
from clarena.metrics.writers import FORMAT_VERSION


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


def _estimate(value: Estimate, scale: float = 100.0, signed: bool = False) -> str:
    if value.mean is None:
        return "–"
    text = f"{value.mean * scale:+.2f}" if signed else f"{value.mean * scale:.2f}"
    return text if value.se is None else f"{text} ± {value.se * scale:.2f}"


def seed_summary(points: list[SweepPoint]) -> list[str]:
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
    ensemble = ensemble_reference(points)
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
    points: list[SweepPoint], pngs: dict[str, bytes], skipped: list[str], title: str
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
                    p.error_overlap.get("progress", "–"),
                    p.error_overlap.get("common", "–"),
                    p.error_overlap.get("regress", "–"),
                    pct(p.average_accuracy),
                ]
                for p in points
            ],
            text_columns=2,
        ),
        *seed_summary(points),
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

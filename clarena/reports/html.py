"""Self-contained static HTML pages for `clarena report`: the shared pieces and the page of a run.

A page is one file: the plots are embedded as base64 PNG `data:` URIs, the style sheet is inline,
and there is no script and no external resource, so it opens offline in any browser, can be mailed
or attached to a ticket, and renders the same everywhere. Every value taken from a run is
escaped (`text`), whatever its type, so a `metrics.json` received from someone else renders as
text and never as markup. The page of a run is titled with the run's identity (experiment,
algorithm, dataset, scenario, seed) and shows its provenance. The page of a sweep is
`clarena.reports.sweep.sweep_page`, the page of a study `clarena.reports.study.study_page`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from clarena.metrics.provenance import identity_line, run_identity

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f2f2f5; } td.text, th.text { text-align: left; white-space: nowrap; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #e3e3e3; }
figcaption { font-size: 0.85rem; color: #555; max-width: 40rem; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
.note { color: #555; font-size: 0.9rem; }
table.wrap td.text:last-child { white-space: normal; max-width: 60rem; overflow-wrap: anywhere; }
"""


def text(value: Any) -> str:
    """`value` as escaped HTML text (quotes included), whatever its type."""
    return html.escape(str(value))


def relative_link(target: str | os.PathLike[str], base: str | os.PathLike[str]) -> str:
    """The address of `target` from a page in the folder `base`: a relative path, percent-encoded
    (`:`, `?`, `#`, spaces, …), so that no folder name (`javascript:alert(1)`) reads as a scheme,
    a query or a fragment; it starts with `./` or `../`. Escape it (`text`) inside an attribute.

    Raises:
        ValueError: when `target` cannot be reached by a relative path (another drive).
    """
    relative = Path(os.path.relpath(os.path.abspath(target), os.path.abspath(base))).as_posix()
    if not relative.startswith("../"):
        relative = "./" + relative
    return quote(relative, safe="/")


def page(title: str, body: Iterable[str]) -> str:
    """A complete HTML document with the shared inline style sheet around `body`."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def figure(png: bytes, alt: str, caption: str = "") -> str:
    """An `<img>` with the PNG embedded as a data URI, inside a `<figure>`."""
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">{cap}</figure>'
    )


def table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    text_columns: int = 1,
    css_class: str = "",
) -> str:
    """An HTML table; the first `text_columns` columns are left-aligned.

    `css_class` `"wrap"` lets long text cells wrap (they stay on one line otherwise).
    """

    def cell(tag: str, i: int, value: Any) -> str:
        cls = ' class="text"' if i < text_columns else ""
        return f"<{tag}{cls}>{html.escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    cls = f' class="{text(css_class)}"' if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pct(value: Any, digits: int = 2) -> str:
    """A fraction as a percentage string; `–` when missing."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value * 100:.{digits}f}"


def config_text(config: dict[str, Any] | None) -> str:
    """The resolved config as YAML (JSON when OmegaConf cannot represent it)."""
    if not config:
        return "(no configuration was recorded with this run)"
    try:
        from omegaconf import OmegaConf

        return OmegaConf.to_yaml(OmegaConf.create(config))
    except Exception:  # keys or values OmegaConf does not accept
        return json.dumps(config, indent=2, sort_keys=True)


def _seconds(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value:.1f} s"


def _versions(libraries: Any) -> str:
    if not isinstance(libraries, dict):
        return "–"
    return ", ".join(f"{name} {version}" for name, version in libraries.items() if version)


def provenance_rows(data: dict[str, Any]) -> list[list[str]]:
    """The rows (item, value) of a run's provenance table, from `metrics.json`."""
    prov = data.get("provenance")
    if not isinstance(prov, dict):
        return [["clarena", str(data.get("clarena_version", "–"))]]
    commit = prov.get("git_commit")
    if commit:
        dirty = prov.get("git_dirty")
        commit = f"{commit}{' (with uncommitted changes)' if dirty else ''}"
    per_task = prov.get("wall_time_per_task_s")
    per_task_text = (
        ", ".join(f"{t}: {_seconds(v)}" for t, v in enumerate(per_task, start=1))
        if isinstance(per_task, list) and per_task
        else "–"
    )
    by = prov.get("wall_time_measured_by")
    rows = [
        ["clarena", str(prov.get("clarena_version", data.get("clarena_version", "–")))],
        ["git commit", str(commit or "not run from a git checkout")],
        ["Python", str(prov.get("python", "–"))],
        ["libraries", _versions(prov.get("libraries"))],
        ["device", str(prov.get("device") or "–")],
        ["wall time per task", per_task_text],
        [
            "wall time in total",
            _seconds(prov.get("wall_time_total_s")) + (f" (measured by {by})" if by else ""),
        ],
        ["command line", str(prov.get("command_line") or "–")],
        ["written at", str(prov.get("written_at") or "–")],
    ]
    return rows


def identity_of(data: dict[str, Any]) -> str:
    """The one-line identity of the run of `metrics.json` (`experiment · algorithm · ...`)."""
    identity = data.get("run")
    if not isinstance(identity, dict):
        identity = run_identity(
            data.get("config") if isinstance(data.get("config"), dict) else None
        )
    return identity_line(identity, data.get("scenario"))


def class_headers(data: dict[str, Any], width: int) -> list[str]:
    """Column headers of per-class tables: the class names of the run where it recorded them."""
    names = data.get("class_names")
    headers = []
    for c in range(width):
        if isinstance(names, list) and c < len(names) and names[c] is not None:
            headers.append(f"{c}: {names[c]}")
        else:
            headers.append(f"class {c}")
    return headers


def _summary_rows(data: dict[str, Any]) -> list[list[str]]:
    names = (
        ("average_accuracy", "average accuracy after the last task (%)"),
        ("backward_transfer", "backward transfer BWT (points of %)"),
        ("forgetting", "forgetting (points of %)"),
        ("forward_transfer", "forward transfer FWT (points of %)"),
    )
    aware = data.get("summary_task_aware")
    rows = []
    for key, label in names:
        row = [label, pct(data["summary"].get(key))]
        if aware is not None:
            row.append(pct(aware.get(key)))
        rows.append(row)
    return rows


def _models(row: dict[str, Any]) -> str:
    old = "reference" if row["old_after_task"] is None else str(row["old_after_task"])
    return f"{old} → {row['new_after_task']}"


def _compat_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    out = []
    for r in rows:
        out.append(
            [
                _models(r),
                r["test_task"],
                r["total"],
                pct(r["old_accuracy"]),
                pct(r["new_accuracy"]),
                pct(r["btc"]),
                pct(r["bec"]),
                pct(r["nfr"]),
                pct(r["pfr"]),
                pct(r.get("nfi")),  # absent from metrics.json of clarena <= 0.1
                r["positive_flips"],
                r["both_wrong"],
                r["negative_flips"],
            ]
        )
    return out


_COMPAT_HEADER = (
    "models (after task)",
    "test task",
    "points",
    "old acc. (%)",
    "new acc. (%)",
    "BTC (%)",
    "BEC (%)",
    "NFR (%)",
    "PFR (%)",
    "NFI (%)",
    "progress",
    "common",
    "regress",
)


def run_page(data: dict[str, Any], pngs: dict[str, bytes], title: str) -> str:
    """The report page of one run from its `metrics.json` content and its PNG plots.

    The page's title is the run's identity (experiment, algorithm, dataset, scenario, seed)
    followed by `title`.
    """
    aware = data.get("accuracy_matrix_task_aware") is not None
    identity = identity_of(data)
    body = [
        f"<h1>{text(identity)}</h1>",
        f'<p class="meta">{text(title)} · scenario: {text(data.get("scenario"))} · tasks '
        f"trained: {text(data.get('num_tasks'))} · clarena {text(data.get('clarena_version'))}"
        "</p>",
        "<h2>Summary</h2>",
        table(
            ["metric", *(["task-agnostic", "task-aware"] if aware else ["value"])],
            _summary_rows(data),
        ),
        '<p class="note">Accuracies are the share of test points classified correctly. BWT and '
        "forgetting: Lopez-Paz &amp; Ranzato (2017), Chaudhry et al. (2018); FWT only when a "
        "reference accuracy per task was recorded.</p>",
        "<h2>Plots</h2>",
        '<div class="plots">',
    ]
    captions = {
        "accuracy_matrix.png": "Accuracy on task j (column) after training task t (row).",
        "accuracy_matrix_task_aware.png": "The same with the prediction restricted to task j's "
        "classes (task-aware).",
        "average_accuracy.png": "Average accuracy over the tasks seen so far, after each task.",
        "flips.png": "Points of earlier tasks that each update broke (negative) or fixed "
        "(positive).",
        "training_curves.png": "The training loss terms of every task, from the run's CSV log.",
    }
    body += [
        figure(pngs[n], n.removesuffix(".png").replace("_", " "), c)
        for n, c in captions.items()
        if n in pngs
    ]
    body.append("</div>")
    for key, name in (
        ("accuracy_matrix", "task-agnostic"),
        ("accuracy_matrix_task_aware", "task-aware"),
    ):
        matrix = data.get(key)
        if matrix is None:
            continue
        width = max((len(r) for r in matrix), default=0)
        per_task = data["average_accuracy_per_task" + key.removeprefix("accuracy_matrix")]
        rows = [
            [t, pct(per_task[t - 1]), *(pct(v) for v in row)]
            for t, row in enumerate(matrix, start=1)
        ]
        label = f" ({name})" if aware else ""
        body += [
            f"<h2>Accuracy matrix{label} (%)</h2>",
            table(["after task", "average", *(f"task {j}" for j in range(1, width + 1))], rows),
        ]
    compat = data.get("compatibility") or []
    body.append("<h2>Compatibility of each update</h2>")
    if compat:
        body += [
            '<p class="note">BTC = #(both right)/#(old right); BEC = #(both wrong)/#(new wrong) '
            "(BackwardCompatibilityML's code divides by the old model's errors instead); "
            "NFR = old accuracy × (1 − BTC); NFI = negative flips/#(new wrong) = 1 − BEC. "
            "progress: errors the update fixed; common: both "
            "wrong; regress: new errors.</p>",
            table(_COMPAT_HEADER, _compat_rows(compat)),
            "<h2>Incompatible points per class (negative flips, all earlier tasks)</h2>",
        ]
        pooled = [r for r in compat if r["test_task"] == "all"]
        width = max((len(r["negative_flips_per_class"]) for r in pooled), default=0)
        rows = [
            [_models(r), *r["negative_flips_per_class"]]
            + [0] * (width - len(r["negative_flips_per_class"]))
            for r in pooled
        ]
        body.append(table(["models (after task)", *class_headers(data, width)], rows))
    else:
        body.append('<p class="note">No update to compare yet (one task trained).</p>')
    body += [
        "<h2>Provenance</h2>",
        table(["item", "value"], provenance_rows(data), text_columns=2, css_class="wrap"),
        "<h2>Resolved configuration</h2>",
        f"<pre>{text(config_text(data.get('config')))}</pre>",
    ]
    return page(f"{identity} — {title}", body)

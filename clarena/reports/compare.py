"""The page of `clarena compare`: one self-contained HTML file about an update of a deployed model.

`compare_page` renders the numbers of `clarena.metrics.functional.release.compare_predictions`
and the gates' verdicts: a summary (accuracies, NFR, PFR, NFI, BTC, BEC, McNemar's p), the
gates, the NFR of every class and group with its Wilson interval, the old → new flip matrix and,
when the inputs were run folders, a gallery of negatively flipped test images. Like every page of
`clarena.reports.html` it has no script and no external resource: the images are inline PNG
`data:` URIs (`png_bytes`, written here with zlib, no imaging library), and every label, class
name and path is escaped.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from clarena.reports.html import page, pct, table, text

_GALLERY_STYLE = (
    "display:flex;flex-wrap:wrap;gap:0.8rem;align-items:flex-start;font-size:0.8rem;color:#555"
)
_THUMB_STYLE = "width:72px;image-rendering:pixelated;border:1px solid #ccc"


def png_bytes(image: np.ndarray) -> bytes:
    """A PNG file of a uint8 image `(H, W)`, `(H, W, 1)`, `(H, W, 3)` or `(H, W, 4)`."""
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        colour_type, channels = 0, 1
    elif pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        colour_type, channels = (2 if pixels.shape[2] == 3 else 6), pixels.shape[2]
    else:
        raise ValueError(f"an image must be (H, W) or (H, W, 1|3|4), got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, width * channels)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter 0

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def class_label(value: Any, names: Sequence[str] | None) -> str:
    """A class as shown: its label, and its name when the dataset has names (`3 (Dress)`)."""
    if names and isinstance(value, int) and 0 <= value < len(names) and names[value] != str(value):
        return f"{value} ({names[value]})"
    return str(value)


def _interval(row: dict[str, Any]) -> str:
    return f"{pct(row['ci_low'])} – {pct(row['ci_high'])}"


def _summary_rows(result: dict[str, Any]) -> list[list[Any]]:
    gain = 100 * (result["new_accuracy"] - result["old_accuracy"])
    return [
        ["samples", result["n"]],
        ["old accuracy (%)", pct(result["old_accuracy"])],
        ["new accuracy (%)", pct(result["new_accuracy"])],
        ["accuracy gain (points)", f"{gain:+.2f}"],
        ["negative flips (old right, new wrong)", result["negative_flips"]],
        ["positive flips (old wrong, new right)", result["positive_flips"]],
        ["NFR: negative flips / samples (%)", pct(result["nfr"])],
        ["PFR: positive flips / samples (%)", pct(result["pfr"])],
        ["NFI: negative flips / new errors (%)", pct(result["nfi"])],
        ["BTC: both right / old right (%)", pct(result["btc"])],
        ["BEC: both wrong / new wrong (%)", pct(result["bec"])],
        ["McNemar p (exact, two-sided)", f"{result['mcnemar_p']:.4g}"],
    ]


def _gate_rows(gates: list[dict[str, Any]], names: Sequence[str] | None) -> list[list[Any]]:
    rows = []
    for g in gates:
        where = f" (class {class_label(g['class'], names)})" if "class" in g else ""
        rows.append([g["name"], f"{g['limit']:g}", f"{g['value']:.6g}{where}", _verdict(g)])
    return rows


def _verdict(gate: dict[str, Any]) -> str:
    return "pass" if gate["passed"] else "FAIL"


def _flip_matrix(matrix: dict[str, Any], names: Sequence[str] | None) -> str:
    classes, counts = matrix["classes"], np.asarray(matrix["counts"], dtype=np.int64)
    if not counts.sum():
        return '<p class="note">No negative flip: no sample the old model had right is lost.</p>'
    rows_used = np.flatnonzero(counts.sum(1))
    cols_used = np.flatnonzero(counts.sum(0))
    header = ["old prediction = true class ↓ / new prediction →"]
    header += [class_label(classes[c], names) for c in cols_used]
    body = [[class_label(classes[r], names), *counts[r, cols_used].tolist()] for r in rows_used]
    return (
        '<p class="note">Negative flips by the old model\'s prediction (which was right, so it is '
        "the true class) and the new model's prediction; classes without any flip are left out."
        "</p>" + table(header, body)
    )


def _gallery(items: Sequence[tuple[bytes, str]]) -> str:
    cells = []
    for png, caption in items:
        data = base64.b64encode(png).decode("ascii")
        cells.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{text(caption)}" '
            f'style="{_THUMB_STYLE}"><figcaption>{text(caption)}</figcaption></figure>'
        )
    return f'<div style="{_GALLERY_STYLE}">' + "".join(cells) + "</div>"


def compare_page(
    result: dict[str, Any],
    gates: list[dict[str, Any]],
    old_source: str,
    new_source: str,
    class_names: Sequence[str] | None = None,
    gallery: Sequence[tuple[bytes, str]] = (),
    gallery_note: str = "",
    notes: Sequence[str] = (),
) -> str:
    """The page of one comparison.

    Args:
        result: what `compare_predictions` returned.
        gates: what `evaluate_gates` returned (may be empty).
        old_source: where the old model's predictions came from (a path), shown escaped.
        new_source: the same for the new model.
        class_names: a name per integer label, or `None`.
        gallery: `(png, caption)` of negatively flipped test images.
        gallery_note: why there is no gallery (shown when `gallery` is empty).
        notes: further lines to show under the title (e.g. which test tasks were compared).
    """
    failed = [g for g in gates if not g["passed"]]
    verdict = "no gate set" if not gates else ("FAILED" if failed else "passed")
    body = [
        f"<h1>Release gate: {text(verdict)}</h1>",
        f'<p class="meta">old: <code>{text(old_source)}</code><br>new: '
        f"<code>{text(new_source)}</code></p>",
        *(f'<p class="note">{text(n)}</p>' for n in notes),
        "<h2>Summary</h2>",
        table(["measure", "value"], _summary_rows(result)),
        '<p class="note">McNemar\'s exact test compares the negative with the positive flips '
        "(the samples both models agree on do not count): a small p says the two models' "
        "accuracies differ by more than chance.</p>",
    ]
    if gates:
        rows = _gate_rows(gates, class_names)
        body += ["<h2>Gates</h2>", table(["gate", "limit", "value", "verdict"], rows)]
    per_class = [
        [
            class_label(r["class"], class_names),
            r["n"],
            r["negative_flips"],
            pct(r["nfr"]),
            _interval(r),
        ]
        for r in result["per_class"]
    ]
    header = ["class", "samples", "negative flips", "NFR (%)", "95 % Wilson interval (%)"]
    body += ["<h2>NFR per class</h2>", table(header, per_class)]
    if result.get("per_group"):
        rows = [
            [r["group"], r["n"], r["negative_flips"], pct(r["nfr"]), _interval(r)]
            for r in result["per_group"]
        ]
        body += ["<h2>NFR per group</h2>", table(["group", *header[1:]], rows)]
    body += ["<h2>Old → new flip matrix</h2>", _flip_matrix(result["flip_matrix"], class_names)]
    body.append("<h2>Negatively flipped test images</h2>")
    if gallery:
        body.append(_gallery(gallery))
    else:
        body.append(f'<p class="note">No gallery: {text(gallery_note or "no image")}.</p>')
    return page(f"clarena compare — {verdict}", body)

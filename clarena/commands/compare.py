"""`clarena compare OLD NEW [--out DIR] [gates]`: the release gate of an update of a deployed model.

OLD and NEW are the deployed model's and the update's predictions on the same test samples: two
prediction files (`.csv` or `.npz` with `label` and `prediction`, optional `id` and `group`;
`clarena.commands.compare_inputs`), two run folders (their final models' saved predictions on
the run's test data; the datasets must match) or two task checkpoints (their saved predictions,
or with `--dataset FILE` their models tested on that dataset config;
`clarena.commands.compare_runs`), or any mix. The command
prints a table, writes `compare.json` and the page `compare.html` (`clarena.reports.compare`)
into `--out` (default `./compare`), and checks the gates:

- `--max-nfr F`: the negative flip rate must not exceed F (a fraction, e.g. 0.02);
- `--max-class-nfr F`: no class's negative flip rate may exceed F;
- `--min-accuracy-gain P`: the new accuracy minus the old must be at least P percentage points
  (negative to tolerate a drop);
- `--alpha A`: the update must not be significantly worse: more negative than positive flips
  with an exact McNemar p below A fails.

Exit status: 0 when every gate passes (or none is set), 1 when a gate fails (one line per
failing gate on stderr, with its value and limit), 2 on bad input (one line: files that cannot be
read, lengths, ids or labels that disagree, a gate out of range), before anything is written.
`compare.json` holds `n`, `old_accuracy`, `new_accuracy`, `nfr`, `pfr`, `nfi`, `btc`, `bec`
(fractions in [0, 1]; `null` where undefined), `mcnemar_p`, `per_class` (`class`, `n`, `nfr`,
`ci_low`, `ci_high`: Wilson 95 %), `per_group` (when groups are given; the test tasks of run
folders), and `gates` (`name`, `limit`, `value`, `passed`). The statistics are those of
`clarena.metrics.functional.release`. Prediction files are read without importing torch.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from clarena.commands.compare_inputs import Predictions

PROG = "clarena compare"
EXIT_PASSED, EXIT_GATE_FAILED, EXIT_BAD_INPUT = 0, 1, 2
"""Exit status: every gate passed; a gate failed; the input was refused (nothing written)."""

JSON_NAME, PAGE_NAME = "compare.json", "compare.html"
SCALARS: tuple[str, ...] = ("n", "old_accuracy", "new_accuracy", "nfr", "pfr", "nfi", "btc")
SCALARS += ("bec", "mcnemar_p")
"""The top-level numbers of `compare.json`, in order."""


class _BadInput(Exception):
    """A command line or input refused; the message is the one line to print."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not argparse's usage block
        raise _BadInput(f"{message}; see {PROG} --help")


def _limit(low: float, high: float, what: str, open_ends: bool = False):
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        inside = low < number < high if open_ends else low <= number <= high
        if not inside:
            ends = f"({low:g}, {high:g})" if open_ends else f"[{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"{value!r} is not {what} in {ends}")
        return number

    return parse


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG,
        description="The release gate of an update of a deployed model: NFR, PFR, NFI, BTC, BEC, "
        "per-class NFR with Wilson intervals, McNemar's test; compare.json and compare.html.",
        epilog="exit status: 0 every gate passed, 1 a gate failed, 2 bad input (nothing written)",
    )
    parser.add_argument("old", type=Path, help="the deployed model's predictions: file, run, .pt")
    parser.add_argument("new", type=Path, help="the update's predictions on the same samples")
    parser.add_argument(
        "--out", type=Path, default=Path("compare"), metavar="DIR", help="output folder (./compare)"
    )
    fraction = _limit(0.0, 1.0, "a fraction")
    parser.add_argument("--max-nfr", type=fraction, metavar="F", help="largest NFR (fraction)")
    parser.add_argument("--max-class-nfr", type=fraction, metavar="F", help="largest class NFR")
    parser.add_argument(
        "--min-accuracy-gain",
        type=_limit(-100.0, 100.0, "a number of percentage points"),
        metavar="P",
        help="smallest accuracy gain allowed, in percentage points (negative: a drop)",
    )
    parser.add_argument(
        "--alpha",
        type=_limit(0.0, 1.0, "a significance level", open_ends=True),
        metavar="A",
        help="fail when the update is significantly worse (exact McNemar p < ALPHA)",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        metavar="FILE",
        help="a cl_dataset config to test the models of task checkpoints (.pt) on",
    )
    parser.add_argument(
        "--gallery", type=int, default=48, metavar="N", help="most flipped images on the page"
    )
    parser.add_argument(
        "--trust-config",
        action="store_true",
        help="read run folders whose config names components outside clarena's allow-list",
    )
    return parser


def _number(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def compare_json(result: dict[str, Any], gates: list[dict[str, Any]]) -> dict[str, Any]:
    """The content of `compare.json` (module docstring) from the result and the gates."""
    slice_keys = ("n", "nfr", "ci_low", "ci_high")
    out: dict[str, Any] = {key: _number(result[key]) for key in SCALARS}
    out["per_class"] = [
        {"class": r["class"], **{k: _number(r[k]) for k in slice_keys}} for r in result["per_class"]
    ]
    if result.get("per_group") is not None:
        out["per_group"] = [
            {"group": r["group"], **{k: _number(r[k]) for k in slice_keys}}
            for r in result["per_group"]
        ]
    out["gates"] = [{k: g[k] for k in ("name", "limit", "value", "passed")} for g in gates]
    return out


def _percent(value: float) -> str:
    return f"{'–':>6}" if not math.isfinite(value) else f"{100 * value:6.2f}"


def console_table(result: dict[str, Any], gates: list[dict[str, Any]], worst: int = 5) -> str:
    """The summary printed by the command: the scores, the worst classes and the gates."""
    gain = 100 * (result["new_accuracy"] - result["old_accuracy"])
    lines = [
        f"samples {result['n']}: old accuracy {_percent(result['old_accuracy']).strip()} %, "
        f"new {_percent(result['new_accuracy']).strip()} % ({gain:+.2f} points)",
        f"  {'NFR':>6} {'PFR':>6} {'NFI':>6} {'BTC':>6} {'BEC':>6}   (%)   McNemar p",
        "  "
        + " ".join(_percent(result[k]) for k in ("nfr", "pfr", "nfi", "btc", "bec"))
        + f"         {result['mcnemar_p']:.4g}",
        f"  negative flips {result['negative_flips']}, positive flips {result['positive_flips']}",
    ]
    ranked = sorted(result["per_class"], key=lambda r: (-r["nfr"], -r["n"]))[:worst]
    lines.append(f"the {len(ranked)} classes of highest NFR (%), with 95 % Wilson intervals:")
    lines += [
        f"  {str(r['class'])[:24]:<24} n={r['n']:<6} NFR {_percent(r['nfr'])}  "
        f"[{_percent(r['ci_low']).strip()}, {_percent(r['ci_high']).strip()}]"
        for r in ranked
    ]
    for gate in gates:
        verdict = "pass" if gate["passed"] else "FAIL"
        lines.append(
            f"gate {gate['name']:<18} {verdict}: {gate['value']:.6g} (limit {gate['limit']:g})"
        )
    return "\n".join(lines)


def _failure(gate: dict[str, Any]) -> str:
    sign = {"max_nfr": ">", "max_class_nfr": ">", "min_accuracy_gain": "<", "alpha": "<"}
    what = {
        "max_nfr": "NFR",
        "max_class_nfr": f"NFR of class {gate.get('class')!r}",
        "min_accuracy_gain": "accuracy gain (points)",
        "alpha": "McNemar p of an update with more negative than positive flips",
    }[gate["name"]]
    return (
        f"{PROG}: gate {gate['name']} failed: {what} {gate['value']:.6g} "
        f"{sign[gate['name']]} limit {gate['limit']:g}"
    )


def _run(args: argparse.Namespace) -> int:
    from clarena.commands.compare_inputs import CompareInputError, align
    from clarena.core.files import atomic_write_text, describe_os_error
    from clarena.metrics.functional.release import GATE_NAMES, compare_predictions, evaluate_gates

    if args.gallery < 0:
        raise _BadInput(f"--gallery must be >= 0, got {args.gallery}")
    out = args.out.expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise _BadInput(f"--out {out} is a file; pass a folder to write {JSON_NAME} into")
    try:
        trust = args.trust_config
        old = read_input(args.old, args.dataset, trust)
        old, new = align(old, read_input(args.new, args.dataset, trust))
        result = compare_predictions(old.labels, old.predictions, new.predictions, old.groups)
    except (CompareInputError, ValueError) as exc:
        raise _BadInput(str(exc)) from None
    gates = evaluate_gates(result, **{name: getattr(args, name) for name in GATE_NAMES})
    names = _class_names(old.config or new.config)
    page = _page(result, gates, old, new, names, args.gallery)
    text = json.dumps(compare_json(result, gates), indent=2, allow_nan=False) + "\n"
    try:
        atomic_write_text(out / JSON_NAME, text)
        atomic_write_text(out / PAGE_NAME, page)
    except OSError as exc:
        raise _BadInput(describe_os_error(exc, "cannot write")) from None
    print(f"{PROG}: {args.old} -> {args.new}")
    print(console_table(result, gates))
    print(f"wrote {out / JSON_NAME} and {out / PAGE_NAME}")
    failed = [g for g in gates if not g["passed"]]
    for gate in failed:
        print(_failure(gate), file=sys.stderr)
    return EXIT_GATE_FAILED if failed else EXIT_PASSED


def read_input(path: Path, dataset: Path | None = None, trust: bool = False) -> Predictions:
    """Read OLD or NEW, whichever kind it is (prediction file, run folder, task checkpoint).

    Raises:
        CompareInputError: a path that is none of the kinds, or that cannot be read.
    """
    from clarena.commands import compare_runs
    from clarena.commands.compare_inputs import CompareInputError, read_prediction_file

    suffix = path.suffix.lower()
    if path.is_dir():
        if not (path / "config.yaml").is_file():
            raise CompareInputError(
                f"{path} is a folder without config.yaml, so not a clarena run folder; pass a "
                "run folder, a task checkpoint or a prediction file (.csv, .npz)"
            )
        if dataset is not None:
            raise CompareInputError(
                f"--dataset tests the models of task checkpoints; pass {path}/checkpoints/"
                "after_task_<t>.pt instead of the run folder"
            )
        return compare_runs.read_run_folder(path, trust)
    if not path.is_file():
        raise CompareInputError(f"{path} does not exist; check the path")
    if suffix in (".csv", ".npz"):
        return read_prediction_file(path)
    if suffix == ".pt":
        if dataset is None:
            return compare_runs.read_checkpoint(path)
        return compare_runs.predict_on_dataset(path, dataset, trust)
    raise CompareInputError(
        f"{path} is not a prediction file (.csv, .npz), a task checkpoint (.pt) or a run folder"
    )


def _class_names(config: dict[str, Any] | None) -> list[str] | None:
    if not config:
        return None
    from clarena.metrics.provenance import label_names_from_config

    return label_names_from_config(config)


def _page(
    result: dict[str, Any],
    gates: list[dict[str, Any]],
    old: Predictions,
    new: Predictions,
    names: list[str] | None,
    limit: int,
) -> str:
    """The page, with the negatively flipped images of whichever input is a run folder."""
    import numpy as np

    from clarena.commands.compare_runs import test_images
    from clarena.reports.compare import class_label, compare_page, png_bytes

    flipped = np.flatnonzero((old.predictions == old.labels) & (new.predictions != new.labels))
    run = new if new.images else old
    images, note = test_images(run, flipped[:limit]) if limit else ([], "--gallery is 0")
    gallery = []
    for i, image in zip(flipped.tolist(), images):
        assert run.tasks is not None and run.positions is not None  # images come from runs only
        shown = f"{class_label(old.labels[i], names)} → {class_label(new.predictions[i], names)}"
        caption = f"task {run.tasks[i]} #{run.positions[i]}: {shown}"
        gallery.append((png_bytes(image), caption))
    notes = []
    tasked = old.tasks if old.tasks is not None else new.tasks
    if tasked is not None:
        tasks = ", ".join(str(t) for t in np.unique(tasked).tolist())
        notes.append(f"compared on the test data of task(s) {tasks}")
    return compare_page(result, gates, old.source, new.source, names, gallery, note, notes)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `clarena compare`; returns the exit status."""
    try:
        return _run(_parser().parse_args(argv))
    except _BadInput as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    raise SystemExit(main())

"""Regenerate the pdoc API documentation: `clarena docs [-o DIR]` (or `python -m clarena docs`).

The whole package is documented with Google-style docstrings and KaTeX math into a git-ignored
folder (`docs/api` by default). Any problem pdoc reports (a module that fails to import, a
docstring it cannot parse) fails the command with exit code 1, so CI catches documentation that
rots.

Parts whose optional extra is not installed (`clarena.tensorflow` needs `clarena[tensorflow]`,
`clarena.integrations.avalanche` needs `clarena[avalanche]`) are left out with a notice.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import warnings
from pathlib import Path

#: Optional sub-packages and the third-party module each one needs.
OPTIONAL_PARTS: dict[str, str] = {
    "clarena.tensorflow": "tensorflow",
    "clarena.integrations.avalanche": "avalanche",
}


def _module_specs() -> tuple[list[str], list[str]]:
    """pdoc module specs for the package, and the optional parts left out."""
    specs, skipped = ["clarena"], []
    for part, requirement in OPTIONAL_PARTS.items():
        present = importlib.util.find_spec(requirement) is not None
        if not present:
            skipped.append(f"{part} (needs `{requirement}`)")
            specs.append(f"!{part}")
    return specs, skipped


def build(output_dir: Path) -> list[str]:
    """Render the HTML API docs into `output_dir`.

    Args:
        output_dir: Folder for the HTML; created if missing.

    Returns:
        The problems pdoc reported (empty when the build is clean).
    """
    # torch must be imported before TensorFlow in one process (the reverse order aborts), and pdoc
    # imports modules in name order, so import it first whenever it is installed.
    if importlib.util.find_spec("torch") is not None:
        import torch  # noqa: F401
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

    import pdoc
    import pdoc.render

    specs, skipped = _module_specs()
    for part in skipped:
        print(f"clarena docs: leaving out {part}")
    pdoc.render.configure(docformat="google", math=True, show_source=True, search=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*specs, output_directory=output_dir)
    pdoc_dir = str(Path(pdoc.__file__).parent)
    return [str(w.message).splitlines()[0] for w in caught if w.filename.startswith(pdoc_dir)]


def main(argv: list[str] | None = None) -> int:
    """`clarena docs`: build the API docs; exit 1 if pdoc reported any problem."""
    parser = argparse.ArgumentParser(prog="clarena docs", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("docs/api"), help="output folder (docs/api)"
    )
    args = parser.parse_args(argv)
    problems = build(args.output)
    for problem in problems:
        print(f"clarena docs: pdoc: {problem}", file=sys.stderr)
    if problems:
        count = len(problems)
        print(f"clarena docs: {count} problem(s); fix the docstrings above", file=sys.stderr)
        return 1
    print(f"clarena docs: wrote {args.output / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

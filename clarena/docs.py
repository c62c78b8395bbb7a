"""Regenerate the pdoc API documentation: `clarena docs [-o DIR]` (or `python -m clarena docs`).

The whole package is documented with Google-style docstrings and KaTeX math into a git-ignored
folder (`docs/api` by default). Any problem pdoc reports (a module that fails to import, a
docstring it cannot parse) fails the command with exit code 1, so CI catches documentation that
rots.

The pages need no network: KaTeX (the math renderer, MIT license) ships inside clarena
(`clarena/_vendor/katex/`) and is copied to `<output>/katex/`, where every page loads it from
(pdoc's own math template, which loads MathJax from a CDN, is replaced by
`clarena/_docs_templates/math.html.jinja2`). The output is quiet: the start-up lines of
TensorFlow and absl and the libraries' deprecation warnings are hidden unless `--verbose`.

Parts whose optional extra is not installed (`clarena.tensorflow` needs `clarena[tensorflow]`,
`clarena.integrations.avalanche` needs `clarena[avalanche]`) are left out with a notice.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import warnings
from importlib import resources
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


#: Folder of the docs output that receives the shipped KaTeX.
KATEX_DIR = "katex"


def copy_katex(output_dir: Path) -> Path:
    """Copy the shipped KaTeX (script, style sheet, fonts, license) to `output_dir/katex`."""
    target = output_dir / KATEX_DIR
    with resources.as_file(resources.files("clarena") / "_vendor" / "katex") as source:
        shutil.copytree(source, target, dirs_exist_ok=True)
    return target


def build(output_dir: Path, verbose: bool = False) -> list[str]:
    """Render the HTML API docs into `output_dir`, with KaTeX beside them.

    Args:
        output_dir: Folder for the HTML; created if missing.
        verbose: Show the libraries' start-up output and warnings instead of hiding them.

    Returns:
        The problems pdoc reported (empty when the build is clean).
    """
    from clarena.pipelines.quiet import import_quietly, silenced_stderr

    # torch (and avalanche, which loads torch's compiler stack) must be imported before TensorFlow
    # in one process (the reverse order crashes), and pdoc imports modules in name order, so they
    # are imported here first, TensorFlow last, with their start-up chatter hidden.
    requirements = sorted(OPTIONAL_PARTS.values(), key=lambda module: module == "tensorflow")
    import_quietly(["torch", *requirements], verbose)

    import pdoc
    import pdoc.render

    specs, skipped = _module_specs()
    for part in skipped:
        print(f"clarena docs: leaving out {part}")
    with resources.as_file(resources.files("clarena") / "_docs_templates") as templates:
        pdoc.render.configure(
            docformat="google",
            math=True,
            show_source=True,
            search=True,
            template_directory=templates,
        )
        output_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(record=True) as caught, silenced_stderr(verbose):
            warnings.simplefilter("always")
            pdoc.pdoc(*specs, output_directory=output_dir)
    copy_katex(output_dir)
    pdoc_dir = str(Path(pdoc.__file__).parent)
    if verbose:
        for w in caught:
            if not w.filename.startswith(pdoc_dir):
                print(warnings.formatwarning(w.message, w.category, w.filename, w.lineno), end="")
    return [str(w.message).splitlines()[0] for w in caught if w.filename.startswith(pdoc_dir)]


def main(argv: list[str] | None = None) -> int:
    """`clarena docs`: build the API docs; exit 1 if pdoc reported any problem."""
    parser = argparse.ArgumentParser(prog="clarena docs", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("docs/api"), help="output folder (docs/api)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the libraries' start-up output and warnings"
    )
    args = parser.parse_args(argv)
    if args.output.exists() and not args.output.is_dir():
        print(
            f"clarena docs: error: --output {args.output} is a file; pass a folder for the HTML "
            "(a new one, or docs/api)",
            file=sys.stderr,
        )
        return 2
    problems = build(args.output, args.verbose)
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

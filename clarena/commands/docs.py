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

A class or method without a docstring of its own shows none, rather than the one Python would
inherit from torch or Lightning (`nn.Module.__init__`'s line on every model's constructor,
`LightningModule`'s list of attributes on every algorithm's): `clear_foreign_docstrings`. One
inherited from a clarena base class is kept. The functions' source code is left out unless
`--source` (its syntax highlighting is about half of pdoc's rendering time).

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


def _owner(doc) -> type | None:
    """The class a pdoc `Function` is defined in (None for a module-level function)."""
    owner = sys.modules.get(doc.modulename)
    for name in doc.qualname.split(".")[:-1]:
        owner = getattr(owner, name, None)
    return owner if isinstance(owner, type) else None


def _inherited_from(cls: type, name: str) -> type | None:
    """The first class after `cls` in its MRO whose `name` attribute (`"__doc__"`: the class
    itself) has a docstring."""
    for base in cls.__mro__[1:]:
        if name == "__doc__":
            text = base.__dict__.get("__doc__")
        else:
            member = base.__dict__.get(name)
            text = getattr(getattr(member, "__func__", member), "__doc__", None)
        if isinstance(text, str) and text.strip():
            return base
    return None


def is_foreign_docstring(doc) -> bool:
    """Whether pdoc's docstring of `doc` (a class or a method) is not its own but inherited from
    a class outside clarena (torch, Lightning)."""
    import pdoc.doc

    if isinstance(doc, pdoc.doc.Class):
        cls: type | None = doc.obj
        name = "__doc__"
        if cls is None or cls.__dict__.get("__doc__"):
            return False
    elif isinstance(doc, pdoc.doc.Function):
        if (getattr(doc.obj, "__doc__", None) or "").strip():
            return False
        cls, name = _owner(doc), doc.name
        if cls is None:
            return False
    else:
        return False
    source = _inherited_from(cls, name)
    return source is not None and source.__module__.partition(".")[0] != "clarena"


def clear_foreign_docstrings(namespace) -> int:
    """Empty the docstrings `is_foreign_docstring` finds in a pdoc module or class (and the
    classes in it), before they are rendered; return how many."""
    import pdoc.doc

    cleared = 0
    for member in namespace.own_members:
        if isinstance(member, (pdoc.doc.Class, pdoc.doc.Function)) and is_foreign_docstring(member):
            member.__dict__["docstring"] = ""  # pdoc's cached value, read by pages and search
            cleared += 1
        if isinstance(member, pdoc.doc.Class):
            cleared += clear_foreign_docstrings(member)
    return cleared


def build(output_dir: Path, verbose: bool = False, source: bool = False) -> list[str]:
    """Render the HTML API docs into `output_dir`, with KaTeX beside them.

    Args:
        output_dir: Folder for the HTML; created if missing.
        verbose: Show the libraries' start-up output and warnings instead of hiding them.
        source: Add each function's highlighted source code ("View Source"); syntax highlighting
            is about half of pdoc's rendering time.

    Returns:
        The problems pdoc reported (empty when the build is clean).
    """
    from clarena.commands.quiet import import_quietly, silenced_stderr

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
            show_source=source,
            search=True,
            template_directory=templates,
        )
        output_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(record=True) as caught, silenced_stderr(verbose):
            warnings.simplefilter("always")
            _render(specs, output_dir)
    copy_katex(output_dir)
    pdoc_dir = str(Path(pdoc.__file__).parent)
    if verbose:
        for w in caught:
            if not w.filename.startswith(pdoc_dir):
                print(warnings.formatwarning(w.message, w.category, w.filename, w.lineno), end="")
    return [str(w.message).splitlines()[0] for w in caught if w.filename.startswith(pdoc_dir)]


def _render(specs: list[str], output_dir: Path) -> None:
    """`pdoc.pdoc(*specs, output_directory=output_dir)`, with the foreign docstrings cleared
    between reading the modules and rendering them."""
    import pdoc.doc
    import pdoc.extract
    import pdoc.render

    modules = {name: pdoc.doc.Module.from_name(name) for name in pdoc.extract.walk_specs(specs)}
    for module in modules.values():
        clear_foreign_docstrings(module)
    for module in modules.values():
        page = output_dir / f"{module.fullname.replace('.', '/')}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_bytes(pdoc.render.html_module(module, modules).encode())
    for name, text in (
        ("index.html", pdoc.render.html_index(modules)),
        ("search.js", pdoc.render.search_index(modules)),
    ):
        if text:
            (output_dir / name).write_bytes(text.encode())


def main(argv: list[str] | None = None) -> int:
    """`clarena docs`: build the API docs; exit 1 if pdoc reported any problem."""
    parser = argparse.ArgumentParser(prog="clarena docs", description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("docs/api"), help="output folder (docs/api)"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the libraries' start-up output and warnings"
    )
    parser.add_argument(
        "--source",
        action="store_true",
        help="add each function's source code to the pages (slower: syntax highlighting)",
    )
    args = parser.parse_args(argv)
    if args.output.exists() and not args.output.is_dir():
        print(
            f"clarena docs: error: --output {args.output} is a file; pass a folder for the HTML "
            "(a new one, or docs/api)",
            file=sys.stderr,
        )
        return 2
    problems = build(args.output, args.verbose, args.source)
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

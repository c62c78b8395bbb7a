"""`clarena list [GROUP ...] [-cd DIR] [--json]`: the datasets, algorithms, experiments, … to use.

The config files are the registry: every `<group>/<name>.yaml` under the shipped configs (and
under each `--config-dir`) is an option `group=name`, described by its leading comment (the
first paragraph, in full, wrapped to the terminal). Nothing else needs to be registered for a new
dataset, algorithm or experiment to appear.

For algorithms and datasets the scenarios they support are shown too: the `supported_scenarios`
of the config's `_target_` class, read from its source code without importing it (so listing stays
instant and runs no code from a config folder). `--json` prints everything as one JSON object,
`{group: {name: {"description", "target", "scenarios"}}}`, for tools.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import shutil
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

#: The groups listed by default, in order, with their headings.
GROUPS: dict[str, str] = {
    "cl_dataset": "datasets (cl_dataset=)",
    "cl_algorithm": "algorithms (cl_algorithm=)",
    "backbone": "backbones (backbone=)",
    "experiment": "experiments (experiment=)",
    "optimizer": "optimizers (optimizer=)",
    "trainer": "trainers (trainer=)",
    "logger": "loggers (logger=)",
    "callbacks": "callbacks (callbacks=)",
    "hydra/launcher": "sweep launchers (hydra/launcher=)",
}

#: The groups whose options say which scenarios they support.
SCENARIO_GROUPS: tuple[str, ...] = ("cl_dataset", "cl_algorithm")


@dataclass
class Option:
    """One option of a config group."""

    name: str
    description: str
    target: str | None = None
    scenarios: list[str] | None = None

    def as_json(self, with_scenarios: bool) -> dict[str, Any]:
        """The option as the value of `clarena list --json`."""
        out: dict[str, Any] = {"description": self.description, "target": self.target}
        if with_scenarios:
            out["scenarios"] = self.scenarios
        return out


def _description(text: str) -> str:
    """The first paragraph of a config's leading comment (after `# @package ...`), in full.

    Prose lines are joined into one line; example lines (indented by two or more spaces after
    the `#`) are kept on lines of their own, starting with two spaces.
    """
    lines: list[str] = []
    prose: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped.startswith("#"):
            break
        body = stripped[1:]
        if body.strip().startswith("@package"):
            continue
        if not body.strip():
            if lines or prose:
                break
            continue
        if body.startswith("   "):  # an example command: its own line
            if prose:
                lines.append(" ".join(prose))
                prose = []
            lines.append("  " + body.strip())
        else:
            prose.append(body.strip())
    if prose:
        lines.append(" ".join(prose))
    return "\n".join(lines)


def _target(text: str) -> tuple[str | None, list[str]]:
    """The `_target_` of a config file and the same-group parents of its defaults list."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None, []
    if not isinstance(data, dict):
        return None, []
    target = data.get("_target_")
    parents = [
        d
        for d in data.get("defaults") or []
        if isinstance(d, str) and d != "_self_" and not d.startswith(("/", "override"))
    ]
    return (target if isinstance(target, str) else None), parents


# ------------------------------------------------------------------ scenarios, read statically
def _module_file(module: str) -> Path | None:
    """The source file of `module`, found without executing the module or its parents."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # top-level: nothing is executed
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if len(parts) == 1:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for location in spec.submodule_search_locations or []:
        base = Path(location).joinpath(*parts[1:])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _parse(module: str, cache: dict[str, ast.Module | None]) -> ast.Module | None:
    if module not in cache:
        path = _module_file(module)
        try:
            cache[module] = ast.parse(path.read_text(encoding="utf-8")) if path else None
        except (OSError, SyntaxError, UnicodeDecodeError):
            cache[module] = None
    return cache[module]


def _definition(module: str, name: str, cache: dict, depth: int = 0) -> tuple[str, ast.AST] | None:
    """Where `name` of `module` is defined: `(module, ClassDef or assigned value)`."""
    tree = _parse(module, cache)
    if tree is None or depth > 8:
        return None
    body = list(tree.body)
    for node in tree.body:  # a lazy package names its classes under `if TYPE_CHECKING:`
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            body.extend(node.body)
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return module, node
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return module, node.value
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.target.id == name and node.value is not None:
                return module, node.value
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _definition(node.module, alias.name, cache, depth + 1)
    return None


def _value(module: str, expr: ast.AST, cache: dict) -> Any:
    """The literal value of `expr` in `module` (following names to their definitions)."""
    try:
        return ast.literal_eval(expr)
    except ValueError:
        pass
    if isinstance(expr, ast.Name):
        found = _definition(module, expr.id, cache)
        if found is not None and not isinstance(found[1], ast.ClassDef):
            return _value(found[0], found[1], cache)
    raise ValueError("not a literal")


def _class_attribute(module: str, klass: ast.ClassDef, attr: str, cache: dict, depth: int = 0):
    """The literal value of class attribute `attr`, looked up through the base classes."""
    for node in klass.body:
        value = None
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == attr for t in node.targets
        ):
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            value = node.value if node.target.id == attr else None
        if value is not None:
            return _value(module, value, cache)
    if depth > 8:
        raise ValueError("too deep")
    for base in klass.bases:
        if isinstance(base, ast.Name):
            found = _definition(module, base.id, cache)
            if found is not None and isinstance(found[1], ast.ClassDef):
                try:
                    return _class_attribute(found[0], found[1], attr, cache, depth + 1)
                except ValueError:
                    continue
    raise ValueError(f"no {attr}")


def supported_scenarios(target: str, cache: dict | None = None) -> list[str] | None:
    """The `supported_scenarios` of the class `target` (`None` if they cannot be read)."""
    module, _, name = target.rpartition(".")
    if not module:
        return None
    cache = {} if cache is None else cache
    found = _definition(module, name, cache)
    if found is None or not isinstance(found[1], ast.ClassDef):
        return None
    try:
        value = _class_attribute(found[0], found[1], "supported_scenarios", cache)
    except ValueError:
        return None
    if isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


# ------------------------------------------------------------------ options
def _walk(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, str]]:
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith(("_", ".")):
            yield from _walk(entry, f"{prefix}{entry.name}/")
        elif entry.name.endswith(".yaml"):
            yield prefix + entry.name[: -len(".yaml")], entry.read_text(encoding="utf-8")


def _folders(group: str, config_dirs: list[Path] | None) -> list[Traversable]:
    shipped: Traversable = resources.files("clarena.configs")
    for part in group.split("/"):
        shipped = shipped / part
    # shipped options win over user options of the same name, as on Hydra's search path
    return [*(Path(folder) / group for folder in reversed(config_dirs or [])), shipped]


def group_options(group: str, config_dirs: list[Path] | None = None) -> dict[str, Option]:
    """The options of `group` with their description, `_target_` and (for algorithms and
    datasets) supported scenarios, from the shipped configs and `config_dirs`."""
    texts: dict[str, str] = {}
    for folder in _folders(group, config_dirs):
        texts.update(dict(_walk(folder)))
    parsed = {name: _target(text) for name, text in texts.items()}

    def target_of(name: str, seen: frozenset[str] = frozenset()) -> str | None:
        target, parents = parsed.get(name, (None, []))
        for parent in parents if target is None else []:
            if parent in parsed and parent not in seen:
                target = target_of(parent, seen | {name})
                if target:
                    break
        return target

    cache: dict[str, ast.Module | None] = {}
    found = {}
    for name in sorted(texts):
        option = Option(name, _description(texts[name]), target_of(name))
        if group in SCENARIO_GROUPS and option.target:
            option.scenarios = supported_scenarios(option.target, cache)
        found[name] = option
    return found


def options(group: str, config_dirs: list[Path] | None = None) -> dict[str, str]:
    """The options of `group` (name → description) in the shipped configs and `config_dirs`."""
    return {name: o.description for name, o in group_options(group, config_dirs).items()}


def _format(option: Option, name_width: int, width: int) -> list[str]:
    indent = " " * (name_width + 4)
    lines: list[str] = []
    paragraphs = option.description.split("\n") if option.description else []
    if option.scenarios is not None:
        paragraphs.append("scenarios: " + ", ".join(option.scenarios))
    for i, paragraph in enumerate(paragraphs or [""]):
        first = f"  {option.name:<{name_width}}  " if i == 0 else indent
        if paragraph.startswith("  "):  # an example command: never wrapped
            lines.append((first + paragraph.strip()).rstrip())
            continue
        wrapped = textwrap.wrap(paragraph, max(width - len(indent), 30), break_on_hyphens=False)
        for j, line in enumerate(wrapped or [""]):
            lines.append(((first if j == 0 else indent) + line).rstrip())
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point of `clarena list`; returns the exit code."""
    parser = argparse.ArgumentParser(prog="clarena list", description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"groups to list (default: {', '.join(GROUPS)})")
    parser.add_argument("-cd", "--config-dir", action="append", type=Path, default=[])
    parser.add_argument("--json", action="store_true", help="print one JSON object, for tools")
    args = parser.parse_args(argv)
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        print(
            f"clarena list: error: unknown group {unknown[0]!r}; choose from {', '.join(GROUPS)}",
            file=sys.stderr,
        )
        return 2
    missing = [str(d) for d in args.config_dir if not d.is_dir()]
    if missing:
        print(
            f"clarena list: error: --config-dir {missing[0]!r} is not a folder; create it "
            f"(clarena init {missing[0]}) or fix the path",
            file=sys.stderr,
        )
        return 2
    listing: dict[str, dict[str, Option]] = {}
    for group in args.groups or GROUPS:
        found = group_options(group, args.config_dir)
        if group == "experiment":  # shared parts of experiments, not experiments themselves
            found = {k: v for k, v in found.items() if "/" not in k}
        listing[group] = found
    if args.json:
        out = {
            group: {n: o.as_json(group in SCENARIO_GROUPS) for n, o in found.items()}
            for group, found in listing.items()
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    width = max(shutil.get_terminal_size((100, 24)).columns, 60)
    for i, (group, found) in enumerate(listing.items()):
        print(("\n" if i else "") + GROUPS[group])
        name_width = max((len(name) for name in found), default=0)
        for option in found.values():
            print("\n".join(_format(option, name_width, width)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

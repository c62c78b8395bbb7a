"""What importing a part of the package pulls in, and no import circle inside the package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import clarena

PACKAGE = Path(clarena.__file__).parent


def _loaded(code: str, names: tuple[str, ...]) -> list[str]:
    """The modules of `names` that `code` leaves imported, in a fresh interpreter."""
    probe = f"{code}; import sys; print([m for m in {names!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_import_losses_pulls_in_neither_lightning_nor_matplotlib_nor_the_algorithms() -> None:
    heavy = ("lightning", "pytorch_lightning", "matplotlib", "clarena.cl_algorithms.base")
    assert _loaded("import clarena.losses", heavy) == []
    assert _loaded("import clarena.cl_algorithms.regularizers", heavy) == []


def test_import_metrics_pulls_in_neither_lightning_nor_matplotlib_nor_the_reports() -> None:
    heavy = ("lightning", "pytorch_lightning", "matplotlib", "torchmetrics", "clarena.reports")
    assert _loaded("import clarena.metrics", heavy) == []
    code = "from clarena.metrics import CLResults; import clarena.metrics.sweep_summary, "
    code += "clarena.metrics.study, clarena.metrics.provenance"
    assert _loaded(code, heavy) == []
    # the torchmetrics classes are imported on first use (torchmetrics imports matplotlib)
    code = "from clarena.metrics import CompatibilityCounts"
    assert "torchmetrics" in _loaded(code, heavy)


def test_reports_import_metrics_and_metrics_never_import_reports() -> None:
    graph = import_graph(PACKAGE, "clarena")
    assert "clarena.metrics.sweep" in graph["clarena.reports.sweep"]
    for name, edges in graph.items():
        if name.startswith("clarena.metrics"):
            assert not {e for e in edges if e.startswith("clarena.reports")}, name
    # not even under TYPE_CHECKING or inside a function
    assert _imports_up(("metrics",), ("clarena.reports",)) == []


def _imports_up(packages: tuple[str, ...], higher: tuple[str, ...]) -> list[tuple[str, str]]:
    """Every `from X import` in `packages` (anywhere in a file) of a module under `higher`."""
    return [
        (path.relative_to(PACKAGE).as_posix(), node.module or "")
        for package in packages
        for path in (PACKAGE / package).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(higher)
    ]


def test_no_lower_layer_imports_a_higher_one() -> None:
    """core < metrics, data, models, algorithms < reports < run_folder < run < commands < cli;
    a dataset records nothing in the metrics."""
    lower = ("core", "metrics", "cl_datasets", "backbones", "heads", "cl_algorithms", "reports")
    above = ("clarena.run_folder", "clarena.run.", "clarena.commands", "clarena.cli")
    assert _imports_up(lower, above) == []
    assert _imports_up(("run_folder",), above[1:]) == []
    assert _imports_up(("run",), ("clarena.commands", "clarena.cli")) == []
    above_core = tuple(f"clarena.{p}" for p in lower if p != "core")
    assert _imports_up(("core",), above_core) == []
    data_and_models = ("cl_datasets", "backbones", "heads")
    assert _imports_up(data_and_models, ("clarena.metrics", "clarena.cl_algorithms")) == []


def test_the_former_pipelines_package_is_gone() -> None:
    """One home per part: the verbs, the run and the run folder; nothing is left behind."""
    assert not (PACKAGE / "pipelines").exists()
    for package in ("run", "run_folder", "commands"):
        assert (PACKAGE / package / "__init__.py").is_file()


def test_the_sweep_modules_do_not_import_each_other_in_a_circle() -> None:
    """`sweep` / `sweep_plots` / `sweep_summary` once referred to each other (under
    `TYPE_CHECKING` and inside functions); now every import between them, wherever written,
    goes one way."""
    names = [
        "metrics/sweep.py",
        "metrics/sweep_summary.py",
        "reports/sweep.py",
        "reports/sweep_plots.py",
    ]
    graph = {
        name: {
            f"{node.module.removeprefix('clarena.').replace('.', '/')}.py"
            for node in ast.walk(ast.parse((PACKAGE / name).read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and node.module
        }
        & set(names)
        for name in names
    }
    assert graph["metrics/sweep.py"] == set()
    assert find_cycle(graph) is None


def test_the_ground_floor_imports_no_framework() -> None:
    code = "import clarena.core.files, clarena.core.idx, clarena.core.scenarios, "
    code += "clarena.core.compatibility"
    assert _loaded(code, ("torch", "tensorflow", "keras", "lightning")) == []


def _module_level_imports(body: list[ast.stmt]):
    """The import statements run when the module is imported (not under `if TYPE_CHECKING:`,
    not inside functions or classes)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            test = node.test
            if getattr(test, "id", None) != "TYPE_CHECKING" and getattr(test, "attr", None) != (
                "TYPE_CHECKING"
            ):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _module_level_imports(node.body)
            for handler in node.handlers:
                yield from _module_level_imports(handler.body)
            yield from _module_level_imports(node.orelse + node.finalbody)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module → the package's modules it imports at module level (`from a import b` counts as
    importing `a.b` when that is a module, else `a`)."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
                continue
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in modules:
                    edges.add(f"{target}.{alias.name}")
                elif target in modules:
                    edges.add(target)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` as `[a, b, ..., a]`, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_package_has_no_import_circle() -> None:
    graph = import_graph(PACKAGE, "clarena")
    assert len(graph) > 50 and "clarena.cl_algorithms.composed" in graph
    assert "clarena.cl_algorithms.terms" in graph["clarena.cl_algorithms.composed"]
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_walk_finds_a_planted_circle(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from .a import A\n")
    (root / "sub" / "a.py").write_text("from pkg.b import B\nA = 1\n")
    (root / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n"
        "def f():\n    import pkg.c\ntry:\n    from pkg.sub import a\nexcept ImportError:\n"
        "    pass\nB = 2\n"
    )
    (root / "c.py").write_text("import pkg.b\n")
    graph = import_graph(root, "pkg")
    assert graph["pkg.b"] == {"pkg.sub.a"}  # neither the TYPE_CHECKING nor the function import
    assert find_cycle(graph) == ["pkg.b", "pkg.sub.a", "pkg.b"]
    (root / "sub" / "a.py").write_text("A = 1\n")
    assert find_cycle(import_graph(root, "pkg")) is None

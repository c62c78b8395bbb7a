"""Issue 37 item 14: collecting the suite imports no heavy optional library.

Every test module is imported when pytest collects, by every xdist worker, whichever tests run.
Avalanche (which imports TensorFlow where that is installed) cost about 9 s of CPU a collection
when one module imported it at its top; such a library is imported inside the tests that use it.
This checks the module-level imports of every test file (the TensorFlow tests, which run in a
session of their own, aside).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

#: Top-level packages a test module may not import at collection.
HEAVY = ("avalanche", "tensorflow", "keras", "clarena.integrations.avalanche", "clarena.tensorflow")


def _module_level_imports(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:  # only statements run at import: not inside functions or fixtures
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _heavy(name: str) -> bool:
    return any(name == h or name.startswith(h + ".") for h in HEAVY)


def test_no_test_module_imports_a_heavy_optional_library_at_collection() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if "tensorflow" in path.relative_to(TESTS).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [f"{path.relative_to(TESTS)}: {n}" for n in _module_level_imports(tree)]
    assert [o for o in offenders if _heavy(o.split(": ", 1)[1])] == []
    assert any(o.endswith(": torch") for o in offenders)  # the walk saw the imports


def test_the_check_catches_a_top_level_import() -> None:
    tree = ast.parse("import avalanche.training\ndef f():\n    import tensorflow\n")
    assert [n for n in _module_level_imports(tree) if _heavy(n)] == ["avalanche.training"]

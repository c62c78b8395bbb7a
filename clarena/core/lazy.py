"""Lazy package attributes: a package names what it exports and imports it on first use (PEP 562),
so that `import clarena.cl_algorithms` or `import clarena.metrics` stays cheap until a class is
actually needed."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str,
    namespace: dict[str, Any],
    attributes: Mapping[str, str],
    submodules: Iterable[str] = (),
    computed: Mapping[str, Callable[[], Any]] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level `__getattr__` and `__dir__` of `package`.

    Args:
        package: The package's `__name__`.
        namespace: Its `globals()`; every value is cached there after its first import.
        attributes: Exported name → the submodule (relative to `package`) that defines it.
        submodules: Submodules exported under their own name.
        computed: Exported name → a function building the value (called once).

    Returns:
        `(__getattr__, __dir__)`, to assign at module level.
    """
    modules = frozenset(submodules)
    builders = dict(computed or {})

    def __getattr__(name: str) -> Any:
        if name in attributes:
            value = getattr(importlib.import_module(f"{package}.{attributes[name]}"), name)
        elif name in builders:
            value = builders[name]()
        elif name in modules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__

"""What imports cost: lazy package attributes (a package names what it exports and imports it on
first use, PEP 562, so that `import clarena.cl_algorithms` or `import clarena.metrics` stays cheap
until a class is actually needed), and the heavy imports of a run made without the garbage
collector walking them."""

from __future__ import annotations

import contextlib
import gc
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the imports in the block.

    Importing a run's path (torch, Lightning, torchmetrics, Hydra) makes about half a million
    objects that live as long as the process and next to no cyclic garbage, yet the collector,
    started by every 700 allocations, ran ~1,100 times over them (7 of them full passes): 0.9-1.4 s
    of a 7-8 s default `clarena train` on the 2-core VM of `benchmarks/README.md`, measured with
    `gc.callbacks`. Reference counting still frees everything acyclic meanwhile. The collector's
    earlier state comes back when the block ends, however it ends (a caller that had disabled it
    keeps it disabled)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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

"""`lazy_exports`: names imported on first use, cached, listed; unknown names refused.
`collector_paused`: no garbage collection inside the block, the collector's state back after it."""

from __future__ import annotations

import gc
import json.decoder

import pytest

from clarena.core.lazy import collector_paused, lazy_exports


def test_lazy_exports_import_on_first_use_and_cache() -> None:
    namespace: dict = {"__all__": ["JSONDecoder", "encoder", "answer"]}
    calls = []
    getattr_, dir_ = lazy_exports(
        "json",
        namespace,
        {"JSONDecoder": "decoder"},
        ["encoder"],
        computed={"answer": lambda: calls.append(1) or 42},
    )
    assert getattr_("JSONDecoder") is json.decoder.JSONDecoder
    assert namespace["JSONDecoder"] is json.decoder.JSONDecoder
    assert getattr_("encoder").__name__ == "json.encoder"
    assert getattr_("answer") == 42 and namespace["answer"] == 42 and calls == [1]
    assert dir_() == sorted({"__all__", "JSONDecoder", "encoder", "answer"})
    with pytest.raises(AttributeError, match="module 'json' has no attribute 'missing'"):
        getattr_("missing")


class _Cycle:
    def __init__(self) -> None:
        self.me = self  # garbage only the cyclic collector can free


def _collections_while(work) -> int:
    runs: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "stop":
            runs.append(info["generation"])

    gc.callbacks.append(count)
    try:
        work()
    finally:
        gc.callbacks.remove(count)
    return len(runs)


def _allocate() -> None:
    for _ in range(20_000):  # ~28 times the 700 allocations that start a collection
        _Cycle()


def test_collector_paused_runs_no_collection_and_restores_the_collector() -> None:
    assert gc.isenabled()
    assert _collections_while(_allocate) > 0  # the control: allocation does start collections

    inside: list[int] = []

    def paused() -> None:
        with collector_paused():
            assert not gc.isenabled()
            inside.append(_collections_while(_allocate))

    paused()
    assert inside == [0]
    assert gc.isenabled()
    with pytest.raises(RuntimeError, match="boom"), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()  # back however the block ends


def test_collector_paused_keeps_a_callers_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()

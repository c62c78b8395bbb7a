"""`lazy_exports`: names imported on first use, cached, listed; unknown names refused."""

from __future__ import annotations

import json.decoder

import pytest

from clarena.core.lazy import lazy_exports


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

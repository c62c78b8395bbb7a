"""The package itself: a light import, the command dispatcher, and the docs command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from clarena import cli


def test_import_clarena_does_not_import_torch_or_tensorflow() -> None:
    code = "import sys, clarena; print([m for m in ('torch', 'tensorflow') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "docs" in out and "usage: clarena" in out


def test_cli_unknown_command_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown command 'trian'" in err[0]


def test_docs_excludes_missing_optional_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    from clarena.commands import docs

    real_find_spec = docs.importlib.util.find_spec
    monkeypatch.setattr(
        docs.importlib.util,
        "find_spec",
        lambda name: None if name == "avalanche" else real_find_spec(name),
    )
    specs, skipped = docs._module_specs()
    assert "!clarena.integrations.avalanche" in specs
    assert skipped == ["clarena.integrations.avalanche (needs `avalanche`)"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_console_script_keeps_freed_memory_unless_the_user_tunes_malloc() -> None:
    """The settings apply in a fresh interpreter (glibc accepts both), and a user's own
    MALLOC_*/GLIBC_TUNABLES variables switch them off."""
    code = "from clarena.cli import keep_freed_memory; print(keep_freed_memory())"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
    for name in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES"):
        out = subprocess.run(
            [sys.executable, "-c", code], env={**env, name: "2"}, capture_output=True, text=True
        )
        assert out.stdout.strip() == "False", (name, out.stderr)

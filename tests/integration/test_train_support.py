"""Running `clarena` as a subprocess: the helper of the `test_train_*` integration tests.

It holds no tests itself; the test files import it (`from test_train_support import clarena`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path


def clarena(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `python -m clarena ARGS` in `cwd` on one thread; return the finished process."""
    full_env = {k: v for k, v in os.environ.items() if k != "CLARENA_KILL_AT"}
    full_env.update({"OMP_NUM_THREADS": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "clarena", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def snapshot(folder: Path) -> dict[str, str]:
    """The SHA-256 of every file under `folder`, by relative path (to show nothing changed)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }

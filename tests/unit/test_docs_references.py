"""`docs/architecture.md` refers only to files inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASES = (ROOT, ROOT / "clarena", ROOT / "clarena" / "configs")


def test_architecture_refers_to_no_file_outside_the_repository() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    paths = [p for p in re.findall(r"`([^`\s]*/[^`\s]*)`", text) if "://" not in p]
    assert paths, "the page names files of the repository"
    outside = [p for p in paths if p.startswith(("/", "~", "..")) or "/../" in p]
    assert outside == []
    concrete = [p for p in paths if "<" not in p]
    missing = [p for p in concrete if not any((base / p).exists() for base in BASES)]
    assert missing == []
    assert "shared/" not in text and "SPEC.md" not in text and "DESIGN.md" not in text

"""Issue 37 item 15: the README's PyTorch snippet of the backward-compatibility losses runs as
written, in a fresh Python, with no warning: h1, h2 and the loader defined, and the NFR call."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"

CHECK = """
flips = ((old_preds == y_test) & (new_preds != y_test)).sum().item()
print("check", flips, len(y_test), nfr.item() == flips / len(y_test), bc_loss.h2 is h2)
"""


def _snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [snippet] = [b for b in blocks if "from clarena.losses import" in b]
    return snippet


@pytest.mark.slow  # a fresh Python that imports torch: about 6 s of CPU
def test_the_readme_torch_snippet_is_self_contained_and_runs(tmp_path: Path) -> None:
    snippet = _snippet()
    script = tmp_path / "snippet.py"
    script.write_text(snippet + CHECK)
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    nfr_line, check_line = done.stdout.splitlines()
    match = re.fullmatch(r"NFR (\d+\.\d\d)%", nfr_line)
    assert match, nfr_line
    _, flips, total, equal, same_h2 = check_line.split()
    assert (total, equal, same_h2) == ("1024", "True", "True")
    assert float(match.group(1)) == round(100 * int(flips) / 1024, 2)
    assert 0 < int(flips) < 1024 // 5  # some flips, and fewer than a fifth of the test set

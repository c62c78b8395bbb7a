"""The TensorFlow snippet of the README runs as written, in a fresh Python, with no warning."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [snippet] = [b for b in blocks if "from clarena.tensorflow import" in b]
    return snippet


def test_the_readme_tensorflow_snippet_is_self_contained_and_runs(tmp_path: Path) -> None:
    snippet = _snippet()
    assert "input_shape=" not in snippet  # Keras 3 warns about it: keras.Input instead
    script = tmp_path / "snippet.py"
    script.write_text(snippet + "\nprint('h2 weights', len(h2.weights), 'h3', len(h3.weights))\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "h2 weights 4 h3 4" in done.stdout

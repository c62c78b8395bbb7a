"""`clarena docs` writes pages that render their formulas with no network.

The docs are built in a subprocess (pdoc imports TensorFlow, which must not share this process
with later torch tests), then opened in headless Chromium with the network emulated offline; every
request the pages make is recorded, and each page must show rendered KaTeX elements and no raw
`$…$` in its text.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_report_rendering import CHROMIUM, DevToolsPipe

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REMOTE = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=["'](?:https?:)?//""", re.I
)

#: Text of the page outside code, KaTeX output, scripts and styles, as one string.
VISIBLE_TEXT = """
(() => {
  const main = document.querySelector("main.pdoc");
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  const parts = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.parentElement.closest("pre, code, .katex, script, style")) parts.push(node.data);
  }
  return parts.join(" ");
})()
"""

STATE = f"""
(async () => {{
  await document.fonts.ready;
  return {{
    katex: document.querySelectorAll("main.pdoc .katex").length,
    errors: Array.from(document.querySelectorAll(".katex-error")).map(e => e.title),
    text: {VISIBLE_TEXT.strip()},
    fonts: Array.from(document.fonts)
      .filter(f => f.family.replaceAll('"', "") === "KaTeX_Main")
      .map(f => f.status),
  }};
}})()
"""

#: Pages with many formulas, relative to the docs folder (nesting depths 1 to 3).
PAGES = (
    "clarena/metrics/results.html",
    "clarena/metrics/functional/cl.html",
    "clarena/cl_algorithms/bc_base.html",
    "clarena/losses.html",
)


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "api"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "clarena", "docs", "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # quiet: no line from the libraries at exit (JAX's nanobind "leaked" report was 180 lines)
    assert "leaked" not in proc.stderr, proc.stderr[:500]
    assert proc.stdout.strip().splitlines()[-1] == f"clarena docs: wrote {out / 'index.html'}"
    return out


def test_generated_docs_reference_no_remote_script_or_style(docs: Path) -> None:
    pages = sorted(docs.rglob("*.html"))
    assert len(pages) > 20
    remote = [str(p.relative_to(docs)) for p in pages if REMOTE.search(p.read_text())]
    assert remote == []
    assert "mathjax" not in (docs / PAGES[0]).read_text().lower()
    for name in ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js", "LICENSE"):
        assert (docs / "katex" / name).is_file(), name
    assert "MIT License" in (docs / "katex" / "LICENSE").read_text()
    assert len(list((docs / "katex" / "fonts").glob("*.woff2"))) == 20


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin")
def test_formulas_render_in_chromium_with_the_network_off(docs: Path, tmp_path: Path) -> None:
    browser = DevToolsPipe(tmp_path / "profile")
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            browser.call(f"{domain}.enable", session)
        browser.call(
            "Network.emulateNetworkConditions",
            session,
            offline=True,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )
        for name in PAGES:
            browser.events.clear()
            browser.call("Page.navigate", session, url=(docs / name).as_uri())
            browser.wait_for("Page.loadEventFired")
            state = browser.call(
                "Runtime.evaluate",
                session,
                expression=STATE,
                awaitPromise=True,
                returnByValue=True,
            )["result"]["value"]
            requests = [
                e["params"]["request"]["url"]
                for e in browser.events
                if e.get("method") == "Network.requestWillBeSent"
            ]
            assert requests, name  # the page, its scripts, style sheets and fonts
            assert all(url.startswith(("file:", "data:")) for url in requests), requests
            assert state["katex"] >= 3, f"{name}: {state['katex']} rendered formulas"
            assert state["errors"] == [], f"{name}: {state['errors']}"
            raw = re.findall(r"\$[^$\s][^$]{0,80}\$", state["text"])
            assert raw == [], f"{name}: formulas left as raw TeX: {raw[:5]}"
            assert "loaded" in state["fonts"], f"{name}: KaTeX's fonts: {state['fonts']}"
            assert "error" not in state["fonts"], f"{name}: KaTeX's fonts: {state['fonts']}"
            assert any(url.endswith(".woff2") for url in requests), name
    finally:
        browser.close()

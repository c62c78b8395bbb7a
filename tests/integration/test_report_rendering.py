"""`clarena report` on a finished run and on a three-point sweep, rendered in headless Chromium.

The run folders are built here with `CLResults.write` and hand-made configs, so the test does not
depend on the training pipeline. Chromium is driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`: JSON messages separated by NUL bytes on file descriptors 3 and 4), which
needs nothing beyond the standard library and reports console messages, uncaught exceptions and
browser log entries (failed loads) as events, and the load state of every image on request.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib import image as mpimg

from clarena.commands import report
from clarena.metrics import CLResults
from clarena.reports.writers import write_results

CHROMIUM = "/usr/bin/chromium"
PNG = b"\x89PNG\r\n\x1a\n"


class DevToolsPipe:
    """A minimal DevTools-protocol client for a Chromium started with `--remote-debugging-pipe`."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 2400) -> None:
        to_browser_read, self._write_fd = os.pipe()
        self._read_fd, from_browser_write = os.pipe()
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--remote-debugging-pipe",
            "about:blank",
        ]

        def wire_fds() -> None:  # in the child: fd 3 reads commands, fd 4 writes replies
            # copy both ends above fd 10 first, so neither can be overwritten by the other's dup2
            read_end = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            args,
            # keep 3 and 4 open through close_fds, which runs after preexec_fn
            pass_fds=(3, 4, to_browser_read, from_browser_write),
            preexec_fn=wire_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._read_fd], [], [], remaining)
            if ready:
                chunk = os.read(self._read_fd, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, timeout: float = 60, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write_fd)
        os.close(self._read_fd)


def render(page: Path, profile: Path) -> tuple[list[list], list[str], np.ndarray]:
    """Open `page`; return the images' (complete, naturalWidth), the errors, the screenshot."""
    browser = DevToolsPipe(profile)
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.call(f"{domain}.enable", session)
        browser.call("Page.navigate", session, url=page.resolve().as_uri())
        browser.wait_for("Page.loadEventFired")
        state = browser.call(
            "Runtime.evaluate",
            session,
            expression="Array.from(document.images).map(i => [i.complete, i.naturalWidth])",
            returnByValue=True,
        )["result"]["value"]
        shot = browser.call("Page.captureScreenshot", session, format="png")["data"]
        errors = []
        for event in browser.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
                errors.append(f"console: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                errors.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f"log: {params['entry'].get('text')}")
    finally:
        browser.close()
    pixels = mpimg.imread(io.BytesIO(base64.b64decode(shot)), format="png")
    return state, errors, pixels


# ------------------------------------------------------------------ run folders built by hand
T = torch.tensor
LABELS = T([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
OLD = T([0, 1, 2, 3, 4, 1, 2, 3, 4, 0])  # after task 1: right on the first five points
SWEEP = [  # (run folder, algorithm, lambda_c, predictions after task 2 on task 1)
    ("0", "clarena.cl_algorithms.BCNewError", 0.0, T([0, 1, 2, 0, 0, 0, 1, 3, 4, 0])),
    ("1", "clarena.cl_algorithms.BCNewError", 1.0, T([0, 1, 2, 3, 0, 1, 2, 3, 4, 0])),
    ("2", "clarena.cl_algorithms.StrictImitation", 1.0, OLD),
]


def make_run(run_dir: Path, target: str, lambda_c: float, new: torch.Tensor) -> None:
    results = CLResults("DataIL")
    results.add(after_task=1, test_task=1, preds=OLD, targets=LABELS)
    results.add(after_task=2, test_task=1, preds=new, targets=LABELS)
    results.add(after_task=2, test_task=2, preds=LABELS, targets=LABELS)
    config = {
        "scenario": "DataIL",
        "seed": 7,
        "cl_algorithm": {"_target_": target, "lambda_c": lambda_c},
        "cl_dataset": {"_target_": "clarena.cl_datasets.DataIncremental", "num_tasks": 2},
    }
    write_results(results.record(config), run_dir / "results")


def make_cil_run(run_dir: Path) -> None:
    results = CLResults("CIL")
    targets = {1: T([0, 1, 0, 1]), 2: T([2, 3, 2, 3]), 3: T([4, 5, 4, 5])}
    preds = {
        (1, 1): T([0, 1, 0, 0]),
        (2, 1): T([0, 0, 1, 1]),
        (2, 2): T([2, 3, 3, 3]),
        (3, 1): T([0, 1, 1, 1]),
        (3, 2): T([2, 2, 2, 2]),
        (3, 3): T([4, 5, 4, 5]),
    }
    for (t, j), p in preds.items():
        results.add(t, j, p, targets[j], preds_task_aware=targets[j])
    config = {"scenario": "CIL", "cl_algorithm": {"_target_": "clarena.cl_algorithms.LwF"}}
    write_results(results.record(config), run_dir / "results")


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    for name, target, lambda_c, new in SWEEP:
        make_run(tmp_path / "multirun" / name, target, lambda_c, new)
    (tmp_path / "multirun" / "multirun.yaml").write_text("hydra: {}\n")
    return tmp_path / "multirun"


def test_report_of_one_run_embeds_plots_tables_and_config(tmp_path, capsys):
    run = tmp_path / "run"
    make_cil_run(run)
    (run / "results" / "flips.png").unlink()  # a missing plot is drawn again from metrics.json
    assert report.main([str(run)]) == 0
    page = run / "results" / "report.html"
    assert f"wrote {page}" in capsys.readouterr().out
    text = page.read_text()
    assert text.count('<img src="data:image/png;base64,') == 4  # matrix ×2, average, flips
    assert (run / "results" / "flips.png").read_bytes().startswith(PNG)
    assert "clarena.cl_algorithms.LwF" in text  # the resolved config
    assert "<td>75.00</td>" in text  # a[1, 1] = 3/4 in the accuracy-matrix table
    assert "http://" not in text and "https://" not in text  # self-contained
    # the results folder itself is accepted too, and --output moves the page
    assert report.main([str(run / "results"), "--output", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.html").is_file()


def test_report_of_a_sweep_writes_tradeoff_plots_and_exact_points(sweep_dir):
    assert report.main([str(sweep_dir)]) == 0
    out = sweep_dir / "sweep_report"
    for name in ("tradeoff_btc", "tradeoff_bec", "error_overlap", "incompatible_per_class"):
        assert (out / f"{name}.png").read_bytes().startswith(PNG)
    rows = (out / "sweep.csv").read_text().splitlines()
    assert rows[0] == (
        "run,algorithm,kind,lambda_c,comparison,accuracy,old_accuracy,btc,bec,nfr,pfr,nfi,"
        "average_accuracy,progress,common,regress,negative_flips_per_class"
    )
    # run 0: both right 3 of 5 old-right; both wrong 3 of 5 new-wrong; flips on classes 3 and 4
    assert (
        rows[1]
        == "0,BCNewError,new_error,0.0,consecutive,0.5,0.5,0.6,0.6,0.2,0.2,0.4,0.75,2,3,2,0 0 0 1 1"
    )
    # run 1: both right 4 of 5; both wrong 5 of 6 new-wrong
    assert rows[2].startswith(
        "1,BCNewError,new_error,1.0,consecutive,0.4,0.5,0.8,0.8333333333333334,"
    )
    assert rows[3].startswith("2,StrictImitation,strict_imitation,1.0,consecutive,0.5,0.5,1.0,1.0,")
    text = (out / "report.html").read_text()
    assert text.count('<img src="data:image/png;base64,') == 4
    assert "λc=0.5" not in text and "λc" in text


def test_unfinished_runs_of_a_sweep_are_listed_and_skipped(sweep_dir):
    (sweep_dir / "3").mkdir()
    assert report.main([str(sweep_dir), "-o", str(sweep_dir / "out")]) == 0
    assert "3/ (no results/metrics.json)" in (sweep_dir / "out" / "report.html").read_text()


def test_bad_paths_get_a_one_line_error(tmp_path, capsys):
    assert report.main([str(tmp_path / "missing")]) == 2
    assert report.main([str(tmp_path)]) == 2
    (tmp_path / "0").mkdir()
    assert report.main([str(tmp_path)]) == 2
    (tmp_path / "0" / "results").mkdir()
    (tmp_path / "0" / "results" / "metrics.json").write_text("{not json")
    assert report.main([str(tmp_path / "0")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and all(line.startswith("clarena report: ") for line in lines)
    assert "does not exist" in lines[0]
    assert "neither a run" in lines[1]
    assert "no finished run in the sweep" in lines[2]
    assert "cannot read" in lines[3]


@pytest.mark.integration
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin")
def test_pages_render_in_headless_chromium(tmp_path, sweep_dir):
    make_cil_run(tmp_path / "run")
    pages = {
        "run": (report.report(tmp_path / "run"), 4),
        "sweep": (report.report(sweep_dir), 4),
    }
    for name, (page, images) in pages.items():
        state, errors, pixels = render(page, tmp_path / f"profile-{name}")
        assert errors == [], f"{name} page: {errors}"
        assert len(state) == images and all(done and width > 0 for done, width in state), state
        assert pixels.shape[0] > 500 and pixels.shape[1] > 500
        gray = pixels[..., :3].mean(axis=2)
        assert float(gray.std()) > 0.05, f"{name} page screenshot looks blank"
        assert float((gray < 0.5).mean()) > 0.01  # some dark ink: text, axes, heat maps
        shutil.copy(page, tmp_path / f"{name}.html")
        mpimg.imsave(tmp_path / f"{name}-screenshot.png", pixels)

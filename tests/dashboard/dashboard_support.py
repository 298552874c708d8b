"""Helpers for the dashboard's browser tests: a real server in a thread, Debian's Chromium through
Playwright, page loads measured (server time, bytes transferred) and chart axes checked."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)


def artifacts_dir(name: str, tmp_path: Path) -> Path:
    """Where a test leaves its screenshots: ``$LOOPML_TEST_ARTIFACTS/<name>`` or ``test-artifacts/<name>``
    at the repository root (git-ignored), and always a copy under the test's ``tmp_path``."""
    root = Path(os.environ.get("LOOPML_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    (tmp_path / "screenshots").mkdir(exist_ok=True)
    return out


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 300  # start-up loads the served model and its window state
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's, driven by Playwright)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Load:
    """One page load: the page's own server time (its Server-Timing header), the bytes that came
    over the wire (encoded bodies and headers, every request), and console errors."""

    status: int
    server_ms: float
    transferred: int
    requests: list[tuple[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def load(page: Any, url: str, wait_for: str | None = None) -> Load:
    """Open ``url`` in ``page`` and wait until the network is idle (and ``wait_for`` is there)."""
    requests: list[Any] = []
    errors: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    def on_finished(request: Any) -> None:
        requests.append(request)

    page.on("requestfinished", on_finished)
    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(url, wait_until="networkidle")
    if wait_for:
        page.wait_for_selector(wait_for)
    page.remove_listener("requestfinished", on_finished)
    page.remove_listener("console", on_console)
    timing = response.headers.get("server-timing", "render;dur=nan")
    sizes = [(r.url, r.sizes()) for r in requests]
    counted = [(u, s["responseBodySize"] + s["responseHeadersSize"]) for u, s in sizes]
    return Load(
        response.status,
        float(timing.split("dur=")[1]),
        sum(n for _, n in counted),
        counted,
        errors,
    )


# Every point of every trace inside its axes' ranges (category axes, heatmaps and waterfalls, whose
# values are steps rather than points, aside): read from the figure Plotly drew (gd._fullData,
# gd._fullLayout), not from what the server meant to send.
AXIS_CHECK = """
(id) => {
  const gd = document.getElementById(id);
  const bad = [];
  const inRange = (ax, value) => {
    if (value === null || value === undefined || ax.type === 'category') return true;
    const v = ax.d2l(value);
    const [lo, hi] = ax.range.map(r => ax.r2l(r)).sort((a, b) => a - b);
    return v >= lo - 1e-9 && v <= hi + 1e-9;
  };
  for (const tr of gd._fullData) {
    if (tr.visible === false || tr.type === 'heatmap' || tr.type === 'waterfall') continue;
    const xa = gd._fullLayout[(tr.xaxis || 'x').replace('x', 'xaxis')];
    const ya = gd._fullLayout[(tr.yaxis || 'y').replace('y', 'yaxis')];
    const n = Math.max((tr.x || []).length, (tr.y || []).length);
    for (let i = 0; i < n; i++) {
      const x = tr.x ? tr.x[i] : null, y = tr.y ? tr.y[i] : null;
      if (!inRange(xa, x) || !inRange(ya, y)) bad.push(tr.name + ': (' + x + ', ' + y + ')');
    }
  }
  return {bad: bad, axes: Object.keys(gd._fullLayout).filter(k => /^[xy]axis/.test(k)).map(
    k => ({name: k, type: gd._fullLayout[k].type, range: gd._fullLayout[k].range}))};
}
"""

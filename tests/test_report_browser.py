"""``wsagg.report`` pages in a real headless browser (Debian's ``chromium``).

The browser is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
NUL-separated JSON on file descriptors 3 and 4; no websocket client, selenium or playwright
needed). It loads the page from ``file://`` and records every console message, uncaught
exception, log entry (failed resource loads are reported there) and every network request
that is not the page itself or a ``data:`` URI; then it takes a full-page screenshot.

Without ``chromium`` the tests are skipped with the command that installs it, unless
``WSAGG_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where a missing browser is a failure.

``python tests/test_report_browser.py OUT.png`` regenerates the docs' screenshot
(``docs/img/report.png``) from the demo dataset.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_INSTALL = "apt-get install -y chromium"


def find_browser() -> str | None:
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        if os.environ.get("WSAGG_REQUIRE_BROWSER") == "1":
            pytest.fail(f"WSAGG_REQUIRE_BROWSER=1 but no chromium is installed; run `{_INSTALL}`.")
        pytest.skip(f"no headless browser (chromium) found; install it with `{_INSTALL}`")
    return path


class DevTools:
    """A minimal DevTools-protocol client over chromium's debugging pipe."""

    def __init__(self, binary: str, profile: str) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # in the child: the pipe on fds 3 (commands) and 4 (replies)
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        args = [binary, "--headless", "--remote-debugging-pipe", "--no-sandbox",
                "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio",
                f"--user-data-dir={profile}", "about:blank"]
        self.proc = subprocess.Popen(  # a fixed argument list
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=fds, close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the debugging pipe")
                self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        deadline = time.monotonic() + timeout
        while True:
            ev = self._read_message(deadline)
            self.events.append(ev)
            if ev.get("method") == method:
                return ev

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except Exception:  # the browser may be gone already
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        os.close(self._to_child)
        os.close(self._from_child)


def render(binary: str, page: Path, width: int = 1200) -> tuple[bytes, list[str], list[str]]:
    """Load ``page`` in headless chromium: (full-page PNG, problems, network requests).

    ``problems`` are console messages, uncaught exceptions and log entries of level warning
    or error; ``requests`` are the URLs fetched other than the page and ``data:`` URIs."""
    import base64

    with tempfile.TemporaryDirectory() as profile:
        dt = DevTools(binary, profile)
        try:
            target = dt.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = dt.call("Target.attachToTarget",
                              {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                dt.call(f"{domain}.enable", session=session)
            dt.call("Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                    session=session)
            url = page.resolve().as_uri()
            nav = dt.call("Page.navigate", {"url": url}, session=session)
            assert not nav.get("errorText"), nav
            dt.wait_for("Page.loadEventFired")
            dt.drain(0.5)
            shot = dt.call("Page.captureScreenshot",
                           {"format": "png", "captureBeyondViewport": True}, session=session)
        finally:
            dt.close()
    problems, requests = [], []
    for ev in dt.events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            problems.append(f"console.{p['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            problems.append(f"exception: {p['exceptionDetails'].get('text')}")
        elif method == "Log.entryAdded" and p["entry"]["level"] in ("warning", "error"):
            problems.append(f"log {p['entry']['level']}: {p['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            req = p["request"]["url"]
            if req != url and not req.startswith("data:"):
                requests.append(req)
        elif method == "Network.loadingFailed":
            problems.append(f"load failed: {p.get('errorText')}")
    return base64.b64decode(shot["data"]), problems, requests


def demo_report(path: Path, **kwargs: Any) -> None:
    """The docs' report: the demo's train and valid items, ``auto`` given the valid split's
    gold as known labels, scored against the train split's gold (never given to the fit)."""
    import wsagg
    from wsagg.datasets import load_demo

    train, valid = load_demo("train"), load_demo("valid")
    L = np.vstack([train.dense(), valid.dense()])
    known = np.concatenate([np.full(train.L.n_items, -1), valid.y])
    gold = np.concatenate([train.y, np.full(valid.L.n_items, -1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the demo's LFs trigger the source checks' notes
        wsagg.report(wsagg.AutoAggregator(random_state=0), L, y=known, gold=gold, path=path,
                     title="wsagg report: YouTube spam (WRENCH), auto with 120 known labels",
                     class_names=train.class_names, **kwargs)


def _decode(png: bytes) -> np.ndarray:
    import io

    import matplotlib.image as mpimg

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(png), format="png")


def test_report_renders_without_console_errors_and_is_not_blank(browser, tmp_path):
    page = tmp_path / "report.html"
    demo_report(page)
    png, problems, requests = render(browser, page)
    assert problems == []
    assert requests == []
    img = _decode(png)
    h, w = img.shape[:2]
    assert w > 1100 and h > 2000  # the whole page (less a scrollbar), several sections
    rgb = (img[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)
    non_white = np.mean(np.any(rgb < 245, axis=1))
    colours = np.unique(rgb[:: max(1, rgb.shape[0] // 200_000)], axis=0).shape[0]
    assert non_white > 0.05, non_white  # text, tables and plots, not an empty page
    assert colours > 200, colours  # anti-aliased text, heatmaps and bars


def test_the_probe_sees_errors_and_network_requests(browser, tmp_path):
    # the checks above could fail: a page with a script error, a console error, a missing
    # image and a remote image is caught on every count
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>bad</title></head><body>"
        "<img src='missing.png'><img src='http://192.0.2.1/x.png'>"
        "<script>console.error('boom'); undefinedFunction();</script></body></html>"
    )
    png, problems, requests = render(browser, page)
    text = "\n".join(problems)
    assert "console.error: boom" in text
    assert "exception" in text
    assert any("missing.png" in r for r in requests)
    assert any(r.startswith("http://192.0.2.1") for r in requests)
    img = _decode(png)
    assert np.mean(np.any(img[..., :3] < 245 / 255, axis=-1)) < 0.05  # nearly blank


if __name__ == "__main__":  # regenerate the docs' screenshot
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img/report.png")
    binary = find_browser()
    if binary is None:
        sys.exit(f"no chromium found; install it with `{_INSTALL}`")
    with tempfile.TemporaryDirectory() as tmp:
        html_path = Path(tmp) / "report.html"
        demo_report(html_path)
        png, problems, _ = render(binary, html_path)
    if problems:
        sys.exit("the page had problems: " + "; ".join(problems))
    try:  # 256 colours keep the docs' image small (Pillow, where installed)
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").quantize(256).save(buf, "PNG", optimize=True)
        png = buf.getvalue()
    except ImportError:
        pass
    out.write_bytes(png)
    print(f"wrote {out} ({len(png):,} bytes)")

"""Open an HTML file in headless Chromium over the DevTools protocol and record what happened.

:func:`open_report` starts ``chromium --headless --remote-debugging-port=0`` with a throw-away
profile, loads ``file://...``, records every network request, console message and uncaught
exception, waits until the page's plotly charts are drawn, evaluates a few expressions and saves
a full-page screenshot. The browser process is always terminated (only the one started here).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-allow-origins=*",
    "--window-size=1280,2000",
)
CHART_PROBE = """(() => {
  const specs = document.querySelectorAll('script[type="application/json"][data-chart-for]');
  let drawn = 0;
  specs.forEach(s => {
    const div = document.getElementById(s.getAttribute('data-chart-for'));
    if (div && div.classList.contains('js-plotly-plot')
        && div.querySelector('svg.main-svg')) drawn++;
  });
  return {specs: specs.length, drawn: drawn,
          plots: document.querySelectorAll('.js-plotly-plot').length};
})()"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable, or ``None``."""
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageRun:
    """What happened while a page loaded."""

    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    charts: dict[str, int] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: Path | None = None
    pdf_pages: int | None = None
    seconds: float = 0.0

    @property
    def network_requests(self) -> list[str]:
        """Requests for anything that is not the local file itself (or data:/blob: URLs)."""
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]

    @property
    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error-level log entries."""
        return self.console_errors + self.exceptions + self.log_errors


class _DevTools:
    """A minimal synchronous DevTools client over one page's websocket."""

    def __init__(self, ws_url: str, run: PageRun, timeout: float) -> None:
        import websocket  # websocket-client

        self._ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self._next_id = 0
        self._run = run
        self.events: list[str] = []

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()

    def _record(self, message: dict[str, Any]) -> None:
        method = message.get("method", "")
        params = message.get("params", {})
        self.events.append(method)
        if method == "Network.requestWillBeSent":
            self._run.requests.append(params.get("request", {}).get("url", ""))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = [a.get("value", a.get("description", "")) for a in params.get("args", [])]
            self._run.console_errors.append(" ".join(str(a) for a in args))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            self._run.exceptions.append(str(text))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self._run.log_errors.append(
                f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}"
            )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its answer, recording events meanwhile."""
        self._next_id += 1
        my_id = self._next_id
        self._ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._record(message)

    def wait_for(self, method: str, timeout: float) -> bool:
        """Read events until ``method`` arrives (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        if method in self.events:
            return True
        while time.monotonic() < deadline:
            self._ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                message = json.loads(self._ws.recv())
            except Exception:  # noqa: BLE001 - a timeout ends the wait
                return False
            self._record(message)
            if message.get("method") == method:
                return True
        return False

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result.get("result", {}).get("value")


def _devtools_port(proc: subprocess.Popen[str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
        if match:
            return int(match.group(1))
    raise RuntimeError("chromium did not start its DevTools endpoint")


def _page_ws_url(port: int, timeout: float) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                targets = json.loads(response.read())
            for target in targets:
                if target.get("type") == "page" and target.get("webSocketDebuggerUrl"):
                    return str(target["webSocketDebuggerUrl"])
        time.sleep(0.1)
    raise RuntimeError("no page target in chromium")


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    """Send ``sig`` to the browser's whole process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def open_report(
    html_path: Path,
    *,
    screenshot: Path | None = None,
    pdf: Path | None = None,
    evaluate: dict[str, str] | None = None,
    chromium: str | None = None,
    timeout: float = 30.0,
    width: int = 1280,
    height: int = 2000,
) -> PageRun:
    """Load ``html_path`` in headless Chromium and report requests, errors and charts drawn.

    Args:
        html_path: the report file.
        screenshot: where to save a full-page PNG (``None``: no screenshot).
        pdf: where to save the page printed to A4 PDF (print CSS applied); ``None``: no PDF.
        evaluate: name -> JavaScript expression evaluated after the charts are drawn.
        chromium: the browser executable (default: :func:`find_chromium`).
        timeout: seconds for the whole run.
        width / height: viewport size.

    Returns:
        A :class:`PageRun`.
    """
    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError("chromium not found")
    run = PageRun()
    start = time.monotonic()
    # chromium's helper processes can still write to the profile after the main process exits:
    # run them in their own process group and stop the whole group before the profile goes
    with tempfile.TemporaryDirectory(
        prefix="recadvisor-chromium-", ignore_cleanup_errors=True
    ) as profile:
        proc = subprocess.Popen(
            [
                exe,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        client = None
        try:
            port = _devtools_port(proc, timeout)
            client = _DevTools(_page_ws_url(port, timeout), run, timeout)
            for domain in ("Page", "Runtime", "Log", "Network"):
                client.call(f"{domain}.enable")
            client.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            client.events.clear()
            client.call("Page.navigate", url=html_path.resolve().as_uri())
            if not client.wait_for("Page.loadEventFired", timeout):
                raise RuntimeError(f"{html_path} did not finish loading in {timeout:.0f}s")
            deadline = time.monotonic() + timeout
            while True:
                run.charts = client.evaluate(CHART_PROBE) or {}
                if run.charts.get("drawn", 0) >= run.charts.get("specs", 0):
                    break
                if time.monotonic() > deadline:
                    break
                client.wait_for("(none)", 0.2)  # keep draining events while plotly draws
            for name, expression in (evaluate or {}).items():
                run.values[name] = client.evaluate(expression)
            if screenshot is not None:
                metrics = client.call("Page.getLayoutMetrics")
                size = metrics.get("cssContentSize") or metrics.get("contentSize", {})
                full_height = int(min(max(size.get("height", height), height), 16000))
                shot = client.call(
                    "Page.captureScreenshot",
                    format="png",
                    captureBeyondViewport=True,
                    clip={"x": 0, "y": 0, "width": width, "height": full_height, "scale": 1},
                )
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                run.screenshot = screenshot
            if pdf is not None:
                printed = client.call(
                    "Page.printToPDF",
                    paperWidth=8.27,
                    paperHeight=11.69,
                    printBackground=True,
                    preferCSSPageSize=False,
                )
                data = base64.b64decode(printed["data"])
                pdf.parent.mkdir(parents=True, exist_ok=True)
                pdf.write_bytes(data)
                run.pdf_pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
            client.wait_for("(none)", 0.3)  # late console errors and requests
        finally:
            if client is not None:
                client.close()
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
            _signal_group(proc, signal.SIGKILL)  # helpers that outlived the main process
            if proc.stderr is not None:
                proc.stderr.close()
    run.seconds = time.monotonic() - start
    return run

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Headless Chromium (Debian's package) for page tests: rendered DOM, screenshots, DOM queries."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    exe = chromium()
    assert exe, "chromium is not installed"
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=60)


def dom(url: str) -> str:
    """The DOM after Chromium loaded and rendered the page (no JavaScript on our pages)."""
    return _run(["--dump-dom", url]).stdout


def screenshot(url: str, path: Path, size: str = "900,700") -> tuple[int, int]:
    """Save a PNG of the rendered page; returns its (width, height)."""
    _run([f"--screenshot={path}", f"--window-size={size}", url])
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def evaluate(url: str, expression: str, timeout: float = 60) -> Any:
    """Load `url` in headless Chromium and evaluate a JavaScript `expression` in the loaded page.

    Through the DevTools protocol: our pages carry no script, and their CSP would refuse
    one, but an expression the browser's own debugger evaluates reads the live DOM as a
    feed reader's or a browser's autodiscovery does (`link.href` resolved against the page).
    Returns the expression's value (JSON-serialisable values only).
    """
    exe = chromium()
    assert exe, "chromium is not installed"
    # Chromium's helpers (zygote, crash handler) may still write to the profile for a moment
    # after the browser exits: stop the whole process group we started, and let a file they
    # left behind not fail the test.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                 "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            port = await _devtools_port(Path(profile), proc, timeout)
            return await asyncio.wait_for(_evaluate_in_page(port, url, expression), timeout)
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """End the browser we started and every helper process it forked (its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with contextlib.suppress(ProcessLookupError):  # helpers outliving the browser
        os.killpg(proc.pid, signal.SIGKILL)


async def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    """The port Chromium chose: with --remote-debugging-port=0 it writes it to DevToolsActivePort."""
    deadline = time.monotonic() + timeout
    active = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"chromium exited with {proc.returncode}"
        lines = active.read_text().splitlines() if active.exists() else []
        if lines and lines[0].isdigit():
            return int(lines[0])
        await asyncio.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


async def _evaluate_in_page(port: int, url: str, expression: str) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
            page = next(t for t in await r.json() if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            calls = iter(range(1, 1_000_000))
            loaded = asyncio.Event()

            async def call(method: str, **params: Any) -> dict[str, Any]:
                call_id = next(calls)
                await ws.send_json({"id": call_id, "method": method, "params": params})
                while True:
                    msg = await ws.receive_json()
                    if msg.get("method") == "Page.loadEventFired":
                        loaded.set()
                    if msg.get("id") == call_id:
                        assert "error" not in msg, (method, msg["error"])
                        return msg["result"]

            await call("Page.enable")
            navigated = await call("Page.navigate", url=url)
            assert "errorText" not in navigated, (url, navigated["errorText"])
            while not loaded.is_set():
                if (await ws.receive_json()).get("method") == "Page.loadEventFired":
                    loaded.set()
            result = await call("Runtime.evaluate", expression=expression, returnByValue=True)
            assert "exceptionDetails" not in result, (expression, result["exceptionDetails"])
            return result["result"].get("value")

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Headless Chromium (Debian's package) for page tests: rendered DOM and screenshots."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str]) -> subprocess.CompletedProcess:
    exe = chromium()
    assert exe, "chromium is not installed"
    with tempfile.TemporaryDirectory() as profile:
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

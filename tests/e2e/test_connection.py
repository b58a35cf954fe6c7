# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #2: a wrong secret or an unreachable host server is a clear, retried error."""

from __future__ import annotations

import signal

from ..support import ports
from ..support.component import Component


def test_wrong_secret_is_named_and_retried(alpha, tmp_path):
    comp = Component(alpha, tmp_path)
    # no HTTP listener: the session's component holds that port
    comp.config.write_text(comp.config.read_text().replace('secret = "blogsecret"', 'secret = "wrong"')
                           .replace(f'listen = "{alpha.ip}:{ports.HTTP}"', 'listen = ""'))
    comp.start(wait=False)
    try:
        comp.wait_log("check [component] secret", timeout=20)
        comp.wait_log("check [component] secret", timeout=20, count=2)  # it keeps trying
        assert comp.proc.poll() is None
    finally:
        assert comp.stop(signal.SIGTERM) == 0


def test_unreachable_server_is_named_and_retried(alpha, tmp_path):
    comp = Component(alpha, tmp_path)
    comp.config.write_text(comp.config.read_text().replace(f"port = {ports.COMPONENT}", "port = 5399")
                           .replace(f'listen = "{alpha.ip}:{ports.HTTP}"', 'listen = ""'))
    comp.start(wait=False)
    try:
        comp.wait_log("cannot reach host server 127.0.10.2:5399", timeout=20)
        comp.wait_log("cannot reach host server", timeout=20, count=2)
        assert comp.proc.poll() is None
    finally:
        assert comp.stop(signal.SIGTERM) == 0

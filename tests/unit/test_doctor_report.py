# SPDX-License-Identifier: AGPL-3.0-or-later
"""The doctor's report: one line per check, JSON, and an exit status that only failures set."""

from __future__ import annotations

import json

import pytest

from xmppblog.doctor.federation import special_use
from xmppblog.doctor.report import Report


def test_only_failures_make_the_exit_status_nonzero():
    r = Report()
    r.ok("config", "fine")
    r.warn("dns", "a local setup")
    r.skip("tls", "not checked")
    assert r.exit_status() == 0
    r.fail("handshake", "wrong\nsecret:   fix it")
    assert r.exit_status() == 1
    lines = r.text().splitlines()
    assert lines[-2] == "FAIL  handshake  wrong secret: fix it", "one plain line per check"
    assert lines[-1] == "doctor: 1 failed, 1 warning(s), 1 ok, 1 skipped"
    out = json.loads(r.json())
    assert out["ok"] is False
    assert out["checks"][1] == {"name": "dns", "status": "warn", "message": "a local setup"}


@pytest.mark.parametrize("domain, local", [
    ("blog.localhost", True), ("localhost", True), ("blog.alpha.test", True), ("x.home.arpa", True),
    ("blog.example.org", False), ("testing.org", False), ("localhost.example.net", False)])
def test_special_use_names_never_federate(domain, local):
    assert special_use(domain) is local


async def test_the_probe_stops_reading_a_peer_that_never_stops_talking():
    """A host (or whatever answers there) that streams endlessly cannot hold the doctor or its memory."""
    import asyncio

    from xmppblog.doctor.component import ComponentProbe, ProbeError

    async def flood(reader, writer):
        writer.write(b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                     b"xmlns:stream='http://etherx.jabber.org/streams' id='x' from='blog.example.org'><handshake>")
        try:
            while True:  # a handshake answer that never ends
                writer.write(b"a" * 16384)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    server = await asyncio.start_server(flood, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    probe = ComponentProbe("blog.example.org", "secret", timeout=5)
    try:
        with pytest.raises(ProbeError, match="more than 1024 KiB"):
            await asyncio.wait_for(probe.connect("127.0.0.1", port), 20)
    finally:
        await probe.close()
        server.close()

# SPDX-License-Identifier: AGPL-3.0-or-later
"""A minimal asyncio XMPP client for load: register, log in, publish fast, count exactly.

Used by the robustness tests (issue #8) and the benchmarks (bench/, issue #7): no
stanza objects and no XML tree, so the load generator is never the bottleneck.
Input is taken one whole stanza at a time, so a marker split across two reads is
never missed nor counted twice. Plaintext SASL PLAIN on loopback only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
from collections import Counter

from . import ports

MARK = re.compile(rb"bench-(\d+)-")
_IQ = re.compile(rb"<iq\b[^>]*>")
_ATTR = re.compile(rb"""\b(id|type)=['"]([^'"]*)['"]""")
#: one whole top-level stanza (they never nest)
_STANZA = re.compile(rb"<(message|iq|presence)\b[^>]*?/>|<(message|iq|presence)\b.*?</\2>", re.S)


class Mini:
    def __init__(self, ip: str, domain: str, user: str, password: str = "password", port: int = ports.C2S) -> None:
        self.ip, self.domain, self.user, self.password, self.port = ip, domain, user, password, port
        self.jid = f"{user}@{domain}"
        self.first_seen: dict[int, float] = {}
        self.seen: Counter[int] = Counter()   # post marker -> notifications received
        self.messages = 0
        self.sample: bytes | None = None       # the first notification received while counting
        self.replies: dict[str, bytes] = {}    # iq id -> type, for pipelined requests
        self.reply_seen = asyncio.Event()
        self._buf = b""
        self._task: asyncio.Task[None] | None = None

    async def _read_until(self, pattern: bytes, timeout: float = 10.0) -> bytes:
        end = time.monotonic() + timeout
        while pattern not in self._buf:
            chunk = await asyncio.wait_for(self.reader.read(65536), max(0.01, end - time.monotonic()))
            if not chunk:
                raise ConnectionError(f"{self.jid}: closed while waiting for {pattern!r}: {self._buf[-300:]!r}")
            self._buf += chunk
        head, _, self._buf = self._buf.partition(pattern)
        return head + pattern

    async def wait_for(self, pattern: bytes, timeout: float = 10.0) -> bytes:
        """Wait for the first match of the regular expression `pattern` (before counting starts)."""
        rx = re.compile(pattern, re.S)
        end = time.monotonic() + timeout
        while (m := rx.search(self._buf)) is None:
            chunk = await asyncio.wait_for(self.reader.read(65536), max(0.01, end - time.monotonic()))
            if not chunk:
                raise ConnectionError(f"{self.jid}: closed while waiting for {pattern!r}")
            self._buf += chunk
        self._buf = self._buf[m.end():]
        return m.group(0)

    async def _read_iq(self, iq_id: str, timeout: float = 10.0) -> bytes:
        """Wait for the reply to iq `iq_id` (self-closing or not); returns it."""
        return await self.wait_for(rb"<iq[^>]*id=['\"]" + re.escape(iq_id.encode()) + rb"['\"][^>]*?(/>|>.*?</iq>)",
                                   timeout)

    def _open(self) -> None:
        self.writer.write(f"<?xml version='1.0'?><stream:stream to='{self.domain}' xmlns='jabber:client' "
                          "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>".encode())

    async def connect(self, register: bool = True) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.ip, self.port)
        self._open()
        await self._read_until(b"</stream:features>")
        if register:
            self.writer.write(f"<iq type='set' id='reg'><query xmlns='jabber:iq:register'><username>{self.user}"
                              f"</username><password>{self.password}</password></query></iq>".encode())
            await self._read_iq("reg")  # result, or conflict when it already exists
        token = base64.b64encode(f"\0{self.user}\0{self.password}".encode()).decode()
        self.writer.write(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode())
        reply = await self._read_until(b"/>")
        if b"success" not in reply:
            raise ConnectionError(f"{self.jid}: authentication failed: {reply!r}")
        self._buf = b""
        self._open()
        await self._read_until(b"</stream:features>")
        self.writer.write(b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                          b"<resource>b</resource></bind></iq>")
        await self._read_iq("bind")
        self.writer.write(b"<presence/>")

    async def request(self, xml: str, timeout: float = 10.0) -> bytes:
        """Send an iq (with an id) and wait for its answer (before counting starts)."""
        iq_id = re.search(r"id=['\"]([^'\"]+)", xml).group(1)  # type: ignore[union-attr]
        self.writer.write(xml.encode())
        return await self._read_iq(iq_id, timeout)

    async def follow_by_roster(self, blog: str) -> None:
        """Follow a blog JID the IM way: ask for its presence and accept its request for ours."""
        self.send(f"<presence to='{blog}' type='subscribe'/>")
        await self.wait_for(rb"<presence[^>]*type=['\"]subscribe['\"][^>]*>")
        self.send(f"<presence to='{blog}' type='subscribed'/>")

    async def ask(self, xml: str, timeout: float = 10.0) -> bytes | None:
        """While counting: send an iq and wait for its answer's type (None on timeout)."""
        iq_id = re.search(r"id=['\"]([^'\"]+)", xml).group(1)  # type: ignore[union-attr]
        self.replies.pop(iq_id, None)
        self.send(xml)
        end = time.monotonic() + timeout
        while iq_id not in self.replies and time.monotonic() < end:
            self.reply_seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.reply_seen.wait(), max(0.01, end - time.monotonic()))
        return self.replies.get(iq_id)

    def send(self, xml: str) -> None:
        self.writer.write(xml.encode())

    def start_counting(self) -> None:
        """From now on a reader task counts notifications by marker and records iq replies."""
        self._task = asyncio.ensure_future(self._count())

    def _take(self, data: bytes) -> int:
        """Count the whole stanzas at the start of `data`; returns where the rest begins."""
        now = time.monotonic()
        end = 0
        for m in _STANZA.finditer(data):
            end = m.end()
            stanza = m.group(0)
            if stanza.startswith(b"<message"):
                self.messages += 1
                if self.sample is None:
                    self.sample = stanza
                for n in {int(x) for x in MARK.findall(stanza)}:
                    self.seen[n] += 1
                    self.first_seen.setdefault(n, now)
            elif stanza.startswith(b"<iq"):
                attrs = dict(_ATTR.findall(_IQ.match(stanza).group(0)))  # type: ignore[union-attr]
                if b"id" in attrs:
                    self.replies[attrs[b"id"].decode()] = attrs.get(b"type", b"")
                    self.reply_seen.set()
        return end

    async def _count(self) -> None:
        buf = self._buf
        self._buf = b""
        while True:
            buf = buf[self._take(buf):]
            chunk = await self.reader.read(262144)
            if not chunk:
                return
            buf += chunk

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        with contextlib.suppress(OSError):  # best effort at the end of a run
            self.writer.write(b"</stream:stream>")
            self.writer.close()

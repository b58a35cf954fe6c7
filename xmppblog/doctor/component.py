# SPDX-License-Identifier: AGPL-3.0-or-later
"""A short XEP-0114 connection of the doctor's own, when xmppblog is not running.

It says whether the host accepts the handshake (and if not, the stream error
it gave), and sends disco#info from the component domain to itself and to a
blog JID: the host routes both back on this stream, the probe answers them, and
the answers come back the same way, which proves the host routes the service
JID and blog JIDs to the component. It also asks disco questions of other
JIDs (the host's XEP-0033 service).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from ..federation.iq import condition
from ..protocol import NS_COMPONENT as NS_ACCEPT
from ..protocol import NS_DISCO_INFO

NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
#: more than a few checks could ever need: whatever sends more is not a host server to trust
MAX_BYTES = 1024 * 1024


class ProbeError(Exception):
    """The connection or the handshake failed; `condition` is the host's stream error, if any."""

    def __init__(self, message: str, condition: str | None = None) -> None:
        super().__init__(message)
        self.condition = condition


@dataclass(frozen=True, slots=True)
class Answer:
    """An iq answer: its <query/> (None on error) or the error condition."""

    query: ET.Element | None
    error: str | None


class ComponentProbe:
    def __init__(self, domain: str, secret: str, timeout: float = 5.0) -> None:
        self.domain = domain
        self.secret = secret
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._stanzas: list[ET.Element] = []
        self._stream_id: str | None = None
        self._ids = itertools.count(1)
        self._received = 0

    async def connect(self, host: str, port: int) -> None:
        """Open the stream and complete the handshake; raises ProbeError saying why not."""
        try:
            self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise ProbeError(f"cannot reach {host}:{port}: {exc or 'timed out'}") from exc
        self._write(f"<?xml version='1.0'?><stream:stream xmlns='{NS_ACCEPT}' "
                    f"xmlns:stream='{NS_STREAM}' to={quoteattr(self.domain)}>")
        while self._stream_id is None:
            if await self._next() is not None:
                raise ProbeError("the host sent a stanza before its stream header")
        digest = hashlib.sha1((self._stream_id + self.secret).encode()).hexdigest()
        self._write(f"<handshake>{digest}</handshake>")
        reply = await self._next_stanza()
        if reply.tag != f"{{{NS_ACCEPT}}}handshake":
            raise ProbeError(f"unexpected answer to the handshake: <{reply.tag.split('}')[-1]}>")

    async def disco_info(self, to: str, sender: str | None = None) -> Answer:
        """disco#info of `to`, from `sender` (the component domain by default); answers the
        questions the host routes to us meanwhile."""
        return await self.ask(to, NS_DISCO_INFO, sender)

    async def ask(self, to: str, namespace: str, sender: str | None = None) -> Answer:
        iq_id = f"doctor{next(self._ids)}"
        self._write(f"<iq type='get' id={quoteattr(iq_id)} to={quoteattr(to)} "
                    f"from={quoteattr(sender or self.domain)}><query xmlns={quoteattr(namespace)}/></iq>")
        while True:
            stanza = await self._next_stanza()
            if stanza.tag != f"{{{NS_ACCEPT}}}iq":
                continue
            kind = stanza.get("type")
            if kind == "get" and stanza.find(f"{{{NS_DISCO_INFO}}}query") is not None:
                self._answer_disco(stanza)
            elif kind in ("result", "error") and stanza.get("id") == iq_id:
                if kind == "result":
                    return Answer(stanza.find(f"{{{namespace}}}query"), None)
                return Answer(None, condition(stanza))

    async def ask_query(self, to: str, namespace: str) -> ET.Element | None:
        """`ask` as xmpp/multicast.discover takes it: the <query/>, or None."""
        return (await self.ask(to, namespace)).query

    def _answer_disco(self, iq: ET.Element) -> None:
        self._write(f"<iq type='result' id={quoteattr(iq.get('id', ''))} to={quoteattr(iq.get('from', ''))} "
                    f"from={quoteattr(iq.get('to', ''))}><query xmlns='{NS_DISCO_INFO}'>"
                    f"<identity category='component' type='generic' name='xmppblog doctor'/></query></iq>")

    async def close(self) -> None:
        if self._writer is None:
            return
        with contextlib.suppress(OSError, TimeoutError):  # the check is over either way
            self._writer.write(b"</stream:stream>")
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        self._writer = None

    # ------------------------------------------------------------ the stream

    def _write(self, data: str) -> None:
        assert self._writer is not None
        self._writer.write(data.encode())

    async def _next_stanza(self) -> ET.Element:
        while True:
            stanza = await self._next()
            if stanza is None:
                continue
            if stanza.tag == f"{{{NS_STREAM}}}error":
                conditions = [c.tag.split("}")[-1] for c in stanza
                              if c.tag.startswith(f"{{{NS_STREAM_ERRORS}}}") and not c.tag.endswith("}text")]
                text = stanza.findtext(f"{{{NS_STREAM_ERRORS}}}text") or ""
                condition = conditions[0] if conditions else "undefined-condition"
                raise ProbeError(f"stream error {condition}" + (f" ({escape(text)})" if text else ""), condition)
            return stanza

    async def _next(self) -> ET.Element | None:
        """The next complete top-level stanza, or None right after the stream header."""
        while True:
            try:
                for event, element in self._parser.read_events():
                    if event == "start":
                        self._depth += 1
                        if self._depth == 1:
                            self._stream_id = element.get("id", "")
                            return None  # the events after it stay queued for the next call
                    else:
                        self._depth -= 1
                        if self._depth == 1:
                            self._stanzas.append(element)
            except ET.ParseError as exc:
                raise ProbeError(f"the host sent malformed XML: {exc}") from exc
            if self._stanzas:
                return self._stanzas.pop(0)
            assert self._reader is not None
            try:
                data = await asyncio.wait_for(self._reader.read(65536), self.timeout)
            except TimeoutError as exc:
                raise ProbeError(f"the host did not answer within {self.timeout:.0f} s") from exc
            except OSError as exc:
                raise ProbeError(f"the connection failed: {exc}") from exc
            if not data:
                raise ProbeError("the host closed the connection")
            self._received += len(data)
            if self._received > MAX_BYTES:
                raise ProbeError(f"the host sent more than {MAX_BYTES // 1024} KiB during the checks")
            try:
                self._parser.feed(data)
            except ET.ParseError as exc:
                raise ProbeError(f"the host sent malformed XML: {exc}") from exc

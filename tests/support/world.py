# SPDX-License-Identifier: AGPL-3.0-or-later
"""The whole server, wired by the composition root, with its stream replaced by a list.

`World` builds the real `App` from a real `Config` over a migrated SQLite file
(every adapter, the router, spamguard, the outbox sender and the HTTP app) and
swaps only the socket: what the server sends is recorded, stanzas are fed in as
the host server would deliver them, and IQs the server sends to other servers
are answered by a scripted `responder`. The security regression tests drive it
from outside, stanza in and stanza out, so they hold whatever the inside looks like.
"""

from __future__ import annotations

import asyncio
import inspect
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from xmppblog import app as app_module
from xmppblog.config import load
from xmppblog.storage import migrate
from xmppblog.xmpp.component import BlogComponent

NS = "jabber:component:accept"
#: answers an IQ the server sent: the reply element, or None to let it time out
Responder = Callable[[ET.Element], "ET.Element | None | Awaitable[ET.Element | None]"]


def parse_out(data: str) -> ET.Element:
    """One stanza the server wrote, parsed as it would be on the stream."""
    return ET.fromstring(f"<s xmlns='{NS}'>{data}</s>")[0]


def stanza(xml: str) -> ET.Element:
    """A stanza as the host server delivers it (in the component namespace)."""
    head = xml.split(">", 1)[0]
    if "xmlns=" not in head:
        xml = xml.replace(" ", f" xmlns='{NS}' ", 1)
    return ET.fromstring(xml)


class Wire(BlogComponent):
    """The real component with its socket replaced: everything it writes lands in `out`."""

    responder: Responder | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.out: list[str] = []
        #: every iq get/set the server sent (to other servers, the host…), never cleared
        self.sent_iqs: list[ET.Element] = []
        self.online.set()
        self._stream_up = True  # the handshake is done (send_raw_stanza writes only then)
        self.transport = _FakeTransport(self.out)

    def send(self, data: Any, use_filters: bool = True) -> None:  # type: ignore[override]
        """slixmpp's stanza path, minus its send queue: straight to `send_raw` (the server's own
        size check) and the fake socket; iqs to other servers are answered by the responder."""
        text = str(data)
        self.send_raw(text)
        el = parse_out(text)
        if el.tag == f"{{{NS}}}iq" and el.get("type") in ("get", "set"):
            self.sent_iqs.append(el)
            asyncio.get_running_loop().create_task(self._answer(el))

    async def _answer(self, iq: ET.Element) -> None:
        reply = None
        if self.responder is not None:
            reply = self.responder(iq)
            if inspect.isawaitable(reply):
                reply = await reply
        if reply is None:
            # no answer: a timeout, quickly (the slixmpp waiter is removed by it)
            reply = stanza(f"<iq type='error' id='{iq.get('id')}' from='{iq.get('to')}' to='{iq.get('from')}'>"
                           "<error type='wait'><remote-server-timeout "
                           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        self._spawn_event(reply)

    async def processed(self, host_domain: str, timeout: float = 15.0) -> bool:  # type: ignore[override]
        return True

    async def writable(self, high_water: int = 0) -> None:  # type: ignore[override]
        return None

    async def disco(self, to: str, namespace: str, timeout: float = 10.0) -> ET.Element | None:  # type: ignore[override]
        return None  # no XEP-0033 service on the test host


class _FakeTransport:
    """The socket: what the server writes (whole stanzas, or the outbox's bulk writes) is kept."""

    def __init__(self, out: list[str]) -> None:
        self.out = out

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.out.append(data.decode())


class World:
    """The assembled server. `await World.start(tmp_path)`; `await world.close()`."""

    service_jid = "blog.example.org"
    users_domain = "example.org"

    def __init__(self, app: Any, wire: Wire, db_url: str) -> None:
        self.app = app
        self.wire = wire
        self.db_url = db_url
        self._http: TestClient | None = None

    @classmethod
    async def start(cls, tmp: Path, extra: str = "", responder: Responder | None = None) -> World:
        db_url = f"sqlite+aiosqlite:///{tmp}/world.db"
        conf = tmp / "xmppblog.toml"
        conf.write_text(f'[component]\njid = "{cls.service_jid}"\nsecret = "s"\n'
                        f'users_domain = "{cls.users_domain}"\nadmins = ["admin@example.org"]\n'
                        f'[database]\nurl = "{db_url}"\n[http]\nlisten = ""\n{extra}\n')
        cfg = load(str(conf), env={})
        await migrate.upgrade(db_url)
        if "component_factory" in app_module.App.__init__.__code__.co_varnames:
            app = app_module.App(cfg, component_factory=Wire)
        else:  # the composition root of bcf2175, to show the regression tests fail there
            original = app_module.BlogComponent
            app_module.BlogComponent = Wire
            try:
                app = app_module.App(cfg)
            finally:
                app_module.BlogComponent = original
        wire = app.component
        assert isinstance(wire, Wire)
        wire.responder = responder
        world = cls(app, wire, db_url)
        await world._prepare()
        return world

    async def _prepare(self) -> None:
        app = self.app
        prepare = getattr(app, "prepare", None)
        if prepare is not None:
            await prepare()
        else:
            app.guard.apply_domain_policies(await app.moderation.domain_policies())
            await app.signer.load()
        await self.settle()
        self.wire.out.clear()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        self.wire.stopping = True
        await self.settle()
        index = getattr(self.app, "search_index", None)
        if index is not None:
            index.close()
        await self.app.engine.dispose()

    # ------------------------------------------------------------ driving

    async def settle(self, rounds: int = 50) -> None:
        """Run until every handler and background task the server started has finished."""
        for _ in range(rounds):
            await asyncio.sleep(0)
            tasks = [t for t in self.wire._tasks if not t.done()]
            if not tasks:
                await asyncio.sleep(0)
                if not [t for t in self.wire._tasks if not t.done()]:
                    return
                continue
            await asyncio.wait(tasks, timeout=15)

    async def receive(self, xml: str) -> list[ET.Element]:
        """Deliver one stanza as the host server would; return what was written in answer
        (replies and immediate stanzas, not the outbox: see `drain`)."""
        self.wire.out.clear()
        el = stanza(xml)
        self.wire._spawn_event(el)
        await self.settle()
        return [parse_out(o) for o in self.wire.out]

    async def request(self, xml: str) -> ET.Element:
        """One raw iq in, its one reply out."""
        el = stanza(xml)
        out = await self.receive(xml)
        replies = [o for o in out if o.tag == f"{{{NS}}}iq" and o.get("id") == el.get("id")]
        assert len(replies) == 1, [ET.tostring(o) for o in out]
        return replies[0]

    async def deliver(self, xml: str) -> list[ET.Element]:
        """One message or presence in; everything written in answer (not the outbox)."""
        return await self.receive(xml)

    async def iq(self, frm: str, to: str, itype: str, payload: str, iq_id: str = "q1") -> ET.Element:
        """One IQ in, its reply out (exactly one)."""
        out = await self.receive(f"<iq type='{itype}' id='{iq_id}' from='{frm}' to='{to}'>{payload}</iq>")
        replies = [o for o in out if o.tag == f"{{{NS}}}iq" and o.get("id") == iq_id]
        assert len(replies) == 1, [ET.tostring(o) for o in out]
        return replies[0]

    async def chat(self, frm: str, body: str, to: str | None = None) -> str:
        """A chat message to the service (or `to`); the body of the bot's answer."""
        from xml.sax.saxutils import escape, quoteattr
        out = await self.receive(f"<message type='chat' from={quoteattr(frm)} to={quoteattr(to or self.service_jid)}>"
                                 f"<body>{escape(body)}</body></message>")
        answers = [o for o in out if o.tag == f"{{{NS}}}message" and o.find(f"{{{NS}}}body") is not None
                   and o.get("to") == frm]
        assert answers, [ET.tostring(o) for o in out]
        return answers[-1].find(f"{{{NS}}}body").text or ""

    async def drain(self) -> list[ET.Element]:
        """Hand every planned notification to the stream; return the stanzas written."""
        self.wire.out.clear()
        await self.settle()
        sender = self.app.sender
        for _ in range(100):
            if not await sender.drain_once():
                break
        out: list[ET.Element] = []
        for data in self.wire.out:
            out += list(ET.fromstring(f"<s xmlns='{NS}'>{data}</s>"))
        self.wire.out.clear()
        return out

    @property
    def sent_bytes(self) -> list[int]:
        return [len(o.encode()) for o in self.wire.out]

    async def http(self) -> TestClient:
        """An aiohttp test client on the server's HTTP app."""
        if self._http is None:
            make = getattr(self.app, "http_api", None)
            if make is not None:
                api = make()
            else:
                from xmppblog.http.server import HttpApi
                api = HttpApi(self.app.service, self.app.social, "http://blog.example.org", self.app.stats)
            self._http = TestClient(TestServer(api.app))
            await self._http.start_server()
        return self._http

    # ------------------------------------------------------------ helpers for scenarios

    async def reconnected(self) -> list[ET.Element]:
        """What the server writes when its stream to the host (re)opens (presence, resyncs)."""
        self.wire.out.clear()
        for callback in list(self.wire._on_online):
            callback()
        await self.settle()
        out = [parse_out(o) for o in self.wire.out]
        self.wire.out.clear()
        return out

    async def online(self, full_jid: str) -> None:
        """A local user who talks to the service, accepts its presence request and comes online."""
        bare = full_jid.split("/", 1)[0]
        await self.chat(full_jid, "tracking")
        await self.receive(f"<presence type='subscribed' from='{bare}' to='{self.service_jid}'/>")
        await self.receive(f"<presence from='{full_jid}' to='{self.service_jid}'/>")
        await self.drain()

    @property
    def sent_iqs(self) -> list[ET.Element]:
        return self.wire.sent_iqs

    def online_count(self) -> int:
        return len(self.app.online)

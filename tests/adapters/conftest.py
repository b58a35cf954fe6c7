# SPDX-License-Identifier: AGPL-3.0-or-later
"""XML in, XML out: the real router and adapters over SQLite, without a socket."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xmppblog.core.addressing import Addressing
from xmppblog.core.service import BlogService, Limits
from xmppblog.core.social import SocialService
from xmppblog.im.commands import ChatBot
from xmppblog.im.online import OnlineTracker
from xmppblog.im.roster import RosterAdapter
from xmppblog.pubsub.errors import error_for
from xmppblog.pubsub.xep_0030 import DiscoAdapter, MiscAdapter
from xmppblog.pubsub.xep_0050 import CommandsAdapter
from xmppblog.pubsub.xep_0060 import PubsubAdapter
from xmppblog.pubsub.xep_0277 import AtomCodec
from xmppblog.storage import migrate
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory
from xmppblog.xmpp.component import BlogComponent

from ..storage.conftest import FakeClock


class Wire(BlogComponent):
    """The component with its stream replaced by a list of sent stanzas."""

    def __init__(self) -> None:
        super().__init__("blog.example.org", "secret", "127.0.0.1", 5347, error_for)
        self.out: list[str] = []
        self.online.set()

    def _send(self, stanza) -> None:  # type: ignore[no-untyped-def]
        self.out.append(ET.tostring(stanza.xml, encoding="unicode"))

    def send_raw_stanza(self, data: str) -> bool:
        self.out.append(data)
        return True

    async def deliver(self, xml: str) -> list[ET.Element]:
        """Feed one message or presence in; return everything sent in answer (parsed)."""
        self.out.clear()
        el = ET.fromstring(xml.replace(">", " xmlns='jabber:component:accept'>", 1)
                           if "xmlns=" not in xml.split(">", 1)[0] else xml)
        stanza = self._build_stanza(el)
        (self._spawn_presence if el.tag.endswith("presence") else self._spawn_message)(stanza)
        for task in list(self._tasks):
            await task
        return [ET.fromstring(f"<s xmlns='jabber:component:accept'>{o}</s>")[0] for o in self.out]

    async def request(self, xml: str) -> ET.Element:
        """Feed one stanza in; return the one reply (parsed)."""
        self.out.clear()
        el = ET.fromstring(xml.replace("<iq ", "<iq xmlns='jabber:component:accept' ", 1))
        stanza = self._build_stanza(el)
        self._spawn_iq(stanza)
        for task in list(self._tasks):
            await task
        assert len(self.out) == 1, self.out
        # pre-serialised replies (RawXml) carry no stream namespace: parse them as on the stream
        return ET.fromstring(f"<s xmlns='jabber:component:accept'>{self.out[0]}</s>")[0]


@pytest.fixture
async def wire(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    await migrate.upgrade(url)
    engine = create_engine(url)
    service = BlogService(Addressing("blog.example.org", "example.org"), uow_factory(sessionmaker(engine)),
                          AtomCodec(), FakeClock(), Limits(max_payload_bytes=2048), new_id=lambda: "fixed")
    w = Wire()
    for adapter in (PubsubAdapter(service), DiscoAdapter(service), MiscAdapter(), CommandsAdapter(service),
                    RosterAdapter(SocialService(service, service._uow), w, OnlineTracker()),
                    ChatBot(SocialService(service, service._uow), w)):
        adapter.register(w)
    yield w
    await engine.dispose()

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Notifications are serialised once per event and addressed per recipient."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from xmppblog.core.model import EventKind, OutboxDelivery, OutboxEvent
from xmppblog.pubsub.notify import OutboxSender, render

EV = "http://jabber.org/protocol/pubsub#event"


def parse(template, to="bob@e.org"):
    return ET.fromstring(template.address(to, "x1"))


def test_publish_event_escapes_attributes_and_embeds_payload():
    ev = OutboxEvent(EventKind.ITEM_PUBLISHED, "a@blog.e.org", "n<'\">", ("x",), item_id="i&1",
                     payload="<entry xmlns='http://www.w3.org/2005/Atom'><title>t</title></entry>",
                     publisher="a@e.org")
    m = parse(render(ev))
    items = m.find(f"{{{EV}}}event/{{{EV}}}items")
    assert items.get("node") == "n<'\">"
    it = items.find(f"{{{EV}}}item")
    assert it.get("id") == "i&1" and it.get("publisher") == "a@e.org"
    assert it.find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}title").text == "t"


def test_other_events():
    base = dict(sender="a@blog.e.org", node="n", recipients=("x",))
    assert parse(render(OutboxEvent(EventKind.ITEM_RETRACTED, item_id="7", **base))).find(
        f".//{{{EV}}}retract").get("id") == "7"
    assert parse(render(OutboxEvent(EventKind.NODE_PURGED, **base))).find(f".//{{{EV}}}purge") is not None
    assert parse(render(OutboxEvent(EventKind.NODE_DELETED, **base))).find(f".//{{{EV}}}delete") is not None
    sub = parse(render(OutboxEvent(EventKind.SUBSCRIPTION_CHANGED, subject="b@e.org", state="subscribed", **base)))
    assert sub.find(f".//{{{EV}}}subscription").get("subscription") == "subscribed"
    template = render(OutboxEvent(EventKind.SUBSCRIPTION_PENDING, subject="b&<@e.org", **base))
    assert parse(template).get("type") == "normal"
    form = parse(template).find("{jabber:x:data}x")
    values = {f.get("var"): f.find("{jabber:x:data}value").text for f in form.findall("{jabber:x:data}field")}
    assert values["pubsub#subscriber_jid"] == "b&<@e.org" and values["pubsub#allow"] == "false"


class FakeUow:
    def __init__(self, rows):
        self.rows, self.handed = rows, []
        self.outbox = self

    def __call__(self):
        return self

    async def __aenter__(self):
        return self

    async def __aexit__(self, *a):
        return None

    async def commit(self):
        pass

    async def due(self, now, limit):
        return [r for r in self.rows if r.row_id not in self.handed][:limit]

    async def done(self, ids):
        self.handed.extend(ids)

    async def mark_sent(self, ids, at):
        self.handed.extend(ids)


class Clock:
    def now(self):
        return datetime.now(UTC)


async def test_sender_serialises_once_and_stops_when_stream_is_gone():
    ev = OutboxEvent(EventKind.ITEM_PUBLISHED, "a@blog.e.org", "n", (), item_id="1", payload="<p xmlns='urn:x'/>")
    rows = [OutboxDelivery(i, 1, f"u{i}@e.org", 0, ev) for i in range(5)]
    uow = FakeUow(rows)
    sent = []

    def send(data):
        if len(sent) == 3:
            return False  # the stream went away
        sent.append(data)
        return True

    sender = OutboxSender(uow, send, asyncio.Event(), Clock())
    assert await sender.drain_once() == 3
    assert uow.handed == [0, 1, 2]
    bodies = {s.split(" id=", 1)[1].split(">", 1)[1] for s in sent}
    assert all(s.startswith('<message from="a@blog.e.org" type=\'headline\' to=') for s in sent)
    assert len(bodies) == 1, "the payload is the same bytes for every recipient"
    assert [ET.fromstring(s).get("to") for s in sent] == ["u0@e.org", "u1@e.org", "u2@e.org"]


def test_im_post_is_chat_without_event_and_presence_templates():
    ev = OutboxEvent(EventKind.IM_POST, "a@blog.e.org", "n", ("b@e.org",), item_id="1",
                     payload="<entry xmlns='http://www.w3.org/2005/Atom'><title>t</title></entry>")
    m = parse(render(ev, lambda e: "hello <you>"))
    assert m.get("type") == "chat" and m.find("body").text == "hello <you>"
    assert m.find(f".//{{{EV}}}event") is None
    assert m.find("{http://www.w3.org/2005/Atom}entry") is not None
    p = parse(render(OutboxEvent(EventKind.PRESENCE, "a@blog.e.org", "", ("b@e.org",), state="subscribe")))
    assert p.tag == "presence" and p.get("type") == "subscribe"
    assert p.find("{http://jabber.org/protocol/nick}nick").text == "a"
    p = parse(render(OutboxEvent(EventKind.PRESENCE, "a@blog.e.org", "", ("b@e.org",), state="available",
                                 payload="latest & greatest")))
    assert p.get("type") is None and p.find("status").text == "latest & greatest"

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Notifications are serialised once per event and addressed per recipient."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from xmppblog.core.model import BulkDelivery, EventKind, OutboxDelivery, OutboxEvent
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
    def __init__(self, rows, bulk=()):
        self.rows, self.handed = rows, []
        self.bulk, self.bulk_done, self.left = list(bulk), [], []
        self.outbox = self

    async def due_bulk(self, now, limit, shards=None):
        return [b for b in self.bulk if b.event_id not in self.bulk_done][:limit]

    async def bulk_handed(self, ids):
        self.bulk_done.extend(ids)

    async def bulk_left(self, event_id, recipients):
        self.left.append((event_id, list(recipients)))

    def __call__(self):
        return self

    async def __aenter__(self):
        return self

    async def __aexit__(self, *a):
        return None

    async def commit(self):
        pass

    async def due(self, now, limit, shards=None):
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

    def send(data, largest=None):
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


def _split(data, stream_ns="jabber:component:accept"):
    """Stanzas written back to back -> elements, as the stream's default namespace makes them."""
    return list(ET.fromstring(f"<s xmlns='{stream_ns}'>{data}</s>"))


async def test_bulk_path_writes_one_chunk_per_write_and_resumes_where_the_stream_went_away():
    ev = OutboxEvent(EventKind.ITEM_PUBLISHED, "a@blog.e.org", "n", tuple(f"u{i}@e.org" for i in range(7)),
                     item_id="1", payload="<p xmlns='urn:x'/>")
    uow = FakeUow([], [BulkDelivery(9, ev)])
    writes = []

    def send(data, largest=None):
        if len(writes) == 2:
            return False  # the stream went away after two chunks
        writes.append(data)
        return True

    sender = OutboxSender(uow, send, asyncio.Event(), Clock(), bulk_chunk=3)
    assert await sender.drain_once() == 6
    assert [len(_split(w)) for w in writes] == [3, 3]
    assert [m.get("to") for w in writes for m in _split(w)] == [f"u{i}@e.org" for i in range(6)]
    assert uow.bulk_done == [] and uow.left == [(9, ["u6@e.org"])]


async def test_bulk_path_drops_oversize_event_and_marks_it_handed():
    ev = OutboxEvent(EventKind.ITEM_PUBLISHED, "a@blog.e.org", "n", ("u@e.org",), item_id="1",
                     payload="<p xmlns='urn:x'>" + "x" * 5000 + "</p>")
    uow = FakeUow([], [BulkDelivery(3, ev)])
    sent = []
    sender = OutboxSender(uow, lambda d, largest=None: sent.append(d) or True, asyncio.Event(), Clock(), max_stanza_bytes=4096)
    assert await sender.drain_once() == 0
    assert sent == [] and uow.bulk_done == [3] and sender.dropped == 1


RECIPIENTS = ["bob@e.org", "carol@e.org/phone", "dave@e.org/it's <odd> & \"quoted\"", "ünï@e.org"]
EVENTS = [
    OutboxEvent(EventKind.ITEM_PUBLISHED, "alice@blog.e.org", "urn:xmpp:microblog:0", (), item_id="p&1",
                payload="<entry xmlns='http://www.w3.org/2005/Atom'><title>t &amp; ü</title></entry>",
                publisher="alice@e.org"),
    OutboxEvent(EventKind.ITEM_RETRACTED, "alice@blog.e.org", "urn:xmpp:microblog:0", (), item_id="7"),
    OutboxEvent(EventKind.NODE_PURGED, "alice@blog.e.org", "n'\"", ()),
    OutboxEvent(EventKind.NODE_DELETED, "alice@blog.e.org", "n", ()),
    OutboxEvent(EventKind.SUBSCRIPTION_CHANGED, "alice@blog.e.org", "n", (), subject="b@e.org",
                state="subscribed"),
    OutboxEvent(EventKind.IM_POST, "alice@blog.e.org", "n", (), item_id="1",
                payload="<entry xmlns='http://www.w3.org/2005/Atom'><title>hi</title></entry>"),
    OutboxEvent(EventKind.PRESENCE, "alice@blog.e.org", "", (), state="available", payload="a & b"),
]


def _slow_path(ev, to, stanza_id):
    """The same notification built the naive way: one slixmpp stanza object per recipient."""
    from slixmpp import Message, Presence
    from slixmpp.plugins.xep_0060 import stanza as ps  # noqa: F401  (registers pubsub_event)

    if ev.kind is EventKind.PRESENCE:
        st = Presence(sfrom=ev.sender, sto=to)
        st["id"] = stanza_id
        if ev.payload:
            st["status"] = ev.payload
        return st
    st = Message(sfrom=ev.sender, sto=to)
    st["id"] = stanza_id
    if ev.kind is EventKind.IM_POST:
        st["type"] = "chat"
        st["body"] = "body"
        st.append(ET.fromstring(ev.payload))
        return st
    st["type"] = "headline"
    event = st["pubsub_event"]
    if ev.kind is EventKind.ITEM_PUBLISHED:
        event["items"]["node"] = ev.node
        item = ps.EventItem()
        item["id"] = ev.item_id
        item["publisher"] = ev.publisher
        item["payload"] = ET.fromstring(ev.payload)
        event["items"].append(item)
    elif ev.kind is EventKind.ITEM_RETRACTED:
        event["items"]["node"] = ev.node
        retract = ps.EventRetract()
        retract["id"] = ev.item_id
        event["items"].append(retract)
    elif ev.kind is EventKind.NODE_PURGED:
        event["purge"]["node"] = ev.node
    elif ev.kind is EventKind.NODE_DELETED:
        event["delete"]["node"] = ev.node
    elif ev.kind is EventKind.SUBSCRIPTION_CHANGED:
        event["subscription"]["node"] = ev.node
        event["subscription"]["jid"] = ev.subject
        event["subscription"]["subscription"] = ev.state
    return st


def _canonical(el):
    return ET.canonicalize(ET.tostring(el, encoding="unicode"), strip_text=True)


def test_fast_path_emits_exactly_the_xml_of_the_slow_paths():
    """Bulk bytes == per-recipient `address()` bytes, and == slixmpp stanza objects in canonical XML."""
    for ev in EVENTS:
        template = render(ev, lambda e: "body")
        for recipients in (RECIPIENTS[:2], RECIPIENTS):  # the spliced path, and the escaping fallback
            fast = template.bulk(recipients, "n5")
            assert fast == "".join(template.address(r, "n5") for r in recipients)
            got = _split(fast, "jabber:client")  # slixmpp's stanza objects are built in jabber:client
            assert [m.get("to") for m in got] == recipients
            for el, to in zip(got, recipients, strict=True):
                slow = _slow_path(ev, to, "n5").xml
                assert _canonical(el) == _canonical(slow), ev.kind


async def test_nothing_is_marked_handed_unless_the_host_confirmed_the_batch():
    """A kill -9 loses bytes even in the kernel: rows stay until the host answered a ping after them."""
    ev = OutboxEvent(EventKind.ITEM_PUBLISHED, "a@blog.e.org", "n", ("u@e.org", "v@e.org"), item_id="1",
                     payload="<p xmlns='urn:x'/>")
    rows = [OutboxDelivery(1, 2, "w@other.org", 0, ev)]
    flushed = [False]

    async def processed():
        return flushed[0]

    uow = FakeUow(rows, [BulkDelivery(2, ev)])
    sender = OutboxSender(uow, lambda d, largest=None: True, asyncio.Event(), Clock(), processed=processed)
    assert await sender.drain_once() == 0
    assert uow.bulk_done == [] and uow.handed == [] and uow.left == []
    flushed[0] = True
    assert await sender.drain_once() == 3
    assert uow.bulk_done == [2] and uow.handed == [1]


ADDR = "{http://jabber.org/protocol/address}"


def test_multicast_stanza_delivers_what_each_unicast_stanza_would():
    """XEP-0033: one stanza to the service, every recipient bcc; taking <addresses/> out and
    addressing it to one recipient gives exactly that recipient's unicast stanza."""
    for ev in EVENTS:
        template = render(ev, lambda e: "body")
        if template.element != "message":
            continue
        for recipients in (RECIPIENTS[:2], RECIPIENTS):  # spliced, and the escaping fallback
            [m] = _split(template.multicast(recipients, "n5.0", "multicast.e.org"), "jabber:client")
            assert m.get("to") == "multicast.e.org" and m.get("id") == "n5.0"
            addresses = m.find(f"{ADDR}addresses")
            assert [(a.get("type"), a.get("jid")) for a in addresses] == [("bcc", r) for r in recipients]
            m.remove(addresses)
            for to in recipients:
                m.set("to", to)
                [unicast] = _split(template.address(to, "n5.0"), "jabber:client")
                assert _canonical(m) == _canonical(unicast), ev.kind


async def test_sender_hands_local_fan_out_to_the_multicast_service_in_chunks_of_its_limit():
    from xmppblog.xmpp.multicast import Multicast
    people = tuple(f"u{i}@e.org" for i in range(45))
    ev = OutboxEvent(EventKind.ITEM_PUBLISHED, "a@blog.e.org", "n", people, item_id="1", payload="<p xmlns='urn:x'/>")
    pres = OutboxEvent(EventKind.PRESENCE, "a@blog.e.org", "", ("p@e.org",), state="available")
    uow = FakeUow([], [BulkDelivery(9, ev), BulkDelivery(10, pres)])
    writes = []
    sender = OutboxSender(uow, lambda d, largest=None: writes.append(d) or True, asyncio.Event(), Clock())
    sender.multicast = Multicast("multicast.e.org", 20)
    assert await sender.drain_once() == 46
    stanzas = [m for w in writes for m in _split(w)]
    multicast = [m for m in stanzas if m.get("to") == "multicast.e.org"]
    assert [len(m.find(f"{ADDR}addresses")) for m in multicast] == [20, 20, 5]
    assert [a.get("jid") for m in multicast for a in m.find(f"{ADDR}addresses")] == list(people)
    assert len({m.get("id") for m in multicast}) == 3, "each chunk can be told apart in a bounce"
    assert [m.get("to") for m in stanzas if m.tag.endswith("presence")] == ["p@e.org"], "presence: unicast"
    assert uow.bulk_done == [9, 10] and sender.multicast_stanzas == 3

    # The service refuses a chunk: its recipients get one stanza each, multicast is off.
    refused = multicast[1].get("id")
    assert not sender.multicast_refused(refused, "intruder.e.org", "forbidden"), "only the service itself"
    writes.clear()
    assert sender.multicast_refused(refused, "multicast.e.org", "not-acceptable")
    assert [m.get("to") for w in writes for m in _split(w)] == list(people[20:40])
    assert sender.multicast is None
    assert not sender.multicast_refused(refused, "multicast.e.org", "not-acceptable"), "sent again once"
    writes.clear()  # a second chunk of the same batch refused after multicast went off: still sent
    assert sender.multicast_refused(multicast[2].get("id"), "multicast.e.org", "not-acceptable")
    assert [m.get("to") for w in writes for m in _split(w)] == list(people[40:])

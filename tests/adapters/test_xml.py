# SPDX-License-Identifier: AGPL-3.0-or-later
"""One request, the whole reply: every error condition of pubsub/errors.py on the wire."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xmppblog.core import errors as E
from xmppblog.pubsub.errors import ERRORS

PS = "http://jabber.org/protocol/pubsub"
ATOM = "http://www.w3.org/2005/Atom"
NODE = "urn:xmpp:microblog:0"
ALICE = "alice@example.org/pc"
BOB = "bob@example.org/pc"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def iq(frm: str, itype: str, payload: str, to: str = "alice@blog.example.org", iq_id: str = "q1") -> str:
    return f"<iq type='{itype}' id='{iq_id}' from='{frm}' to='{to}'>{payload}</iq>"


def publish(title: str = "hi", item: str = " id='p1'", node: str = NODE) -> str:
    return (f"<pubsub xmlns='{PS}'><publish node='{node}'><item{item}>"
            f"<entry xmlns='{ATOM}'><title>{title}</title></entry></item></publish></pubsub>")


def canon(el: ET.Element) -> str:
    return ET.canonicalize(ET.tostring(el, encoding="unicode"), strip_text=True)


def err(reply: ET.Element) -> tuple[str, str, str | None, str | None]:
    assert reply.get("type") == "error", ET.tostring(reply)
    e = reply.find("{jabber:component:accept}error")
    cond = next(c.tag.split("}")[1] for c in e if c.tag.startswith(f"{{{STANZAS}}}") and not c.tag.endswith("text"))
    app = next((c.tag.split("}")[1] for c in e if c.tag.startswith(f"{{{PS}#errors}}")), None)
    text = e.find(f"{{{STANZAS}}}text")
    return e.get("type"), cond, app, text.text if text is not None else None


async def test_publish_reply_is_exact(wire):
    reply = await wire.request(iq(ALICE, "set", publish()))
    expected = ET.fromstring(
        "<iq xmlns='jabber:component:accept' type='result' id='q1' from='alice@blog.example.org' "
        f"to='{ALICE}'><pubsub xmlns='{PS}'><publish node='{NODE}'><item id='p1'/></publish></pubsub></iq>")
    assert canon(reply) == canon(expected)


async def test_server_assigns_item_id(wire):
    reply = await wire.request(iq(ALICE, "set", publish(item="")))
    assert reply.find(f".//{{{PS}}}item").get("id") == "fixed"


async def test_retract_and_unsubscribe_replies_are_empty_results(wire):
    await wire.request(iq(ALICE, "set", publish()))
    reply = await wire.request(iq(ALICE, "set", f"<pubsub xmlns='{PS}'><retract node='{NODE}'><item id='p1'/></retract></pubsub>"))
    assert reply.get("type") == "result" and list(reply) == []


CASES = [
    # (domain error, request from, payload, to)
    (E.NodeNotFound, BOB, f"<pubsub xmlns='{PS}'><items node='nope'/></pubsub>", None),
    (E.ItemNotFound, ALICE, f"<pubsub xmlns='{PS}'><retract node='{NODE}'><item id='zz'/></retract></pubsub>", None),
    (E.Forbidden, BOB, publish(), None),
    (E.InvalidJid, BOB, f"<pubsub xmlns='{PS}'><subscribe node='{NODE}' jid='alice@example.org'/></pubsub>", None),
    (E.InvalidPayload, ALICE, f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item><x xmlns='urn:y'/></item></publish></pubsub>", None),
    (E.PayloadTooBig, ALICE, publish("x" * 3000), None),
    (E.BadRequest, ALICE, f"<pubsub xmlns='{PS}'><items node='{NODE}' max_items='many'/></pubsub>", None),
    (E.ItemRequired, ALICE, f"<pubsub xmlns='{PS}'><retract node='{NODE}'/></pubsub>", None),
    (E.NodeIdRequired, ALICE, f"<pubsub xmlns='{PS}'><items/></pubsub>", None),
    (E.NotSubscribed, BOB, f"<pubsub xmlns='{PS}'><unsubscribe node='{NODE}' jid='bob@example.org'/></pubsub>", None),
    (E.Unsupported, BOB, f"<pubsub xmlns='{PS}'><options node='{NODE}' jid='bob@example.org'/></pubsub>", None),
    (E.Conflict, ALICE, f"<pubsub xmlns='{PS}'><create node='{NODE}'/></pubsub>", None),
    (E.InvalidOptions, ALICE,
     f"<pubsub xmlns='{PS}#owner'><configure node='{NODE}'><x xmlns='jabber:x:data' type='submit'>"
     "<field var='pubsub#colour'><value>red</value></field></x></configure></pubsub>", None),
    (E.PreconditionNotMet, ALICE,
     f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item id='p2'><entry xmlns='{ATOM}'><title>t</title></entry></item>"
     "</publish><publish-options><x xmlns='jabber:x:data' type='submit'>"
     f"<field var='FORM_TYPE' type='hidden'><value>{PS}#publish-options</value></field>"
     "<field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub>", None),
]


@pytest.mark.parametrize("error,frm,payload,to", CASES, ids=[c[0].__name__ for c in CASES])
async def test_error_conditions(wire, error, frm, payload, to):
    await wire.request(iq(ALICE, "set", publish(), iq_id="setup"))  # the node exists, item p1
    reply = await wire.request(iq(frm, "get" if "<items" in payload or "<options" in payload else "set",
                                  payload, to or "alice@blog.example.org"))
    etype, cond, app = ERRORS[error]
    got = err(reply)
    assert got[:3] == (etype, cond, app)
    assert got[3], "every refusal explains itself"
    assert reply.get("id") == "q1" and reply.get("from") == "alice@blog.example.org" and reply.get("to") == frm
    if error is E.Unsupported:
        assert reply.find(f".//{{{PS}#errors}}unsupported").get("feature") == "options"


async def test_access_refusals(wire):
    await wire.request(iq(ALICE, "set", publish()))
    for model, expected in (("whitelist", E.ClosedNode), ("presence", E.PresenceSubscriptionRequired),
                            ("authorize", E.NotSubscribedAccess)):
        conf = (f"<pubsub xmlns='{PS}#owner'><configure node='{NODE}'><x xmlns='jabber:x:data' type='submit'>"
                f"<field var='pubsub#access_model'><value>{model}</value></field></x></configure></pubsub>")
        assert (await wire.request(iq(ALICE, "set", conf))).get("type") == "result"
        reply = await wire.request(iq(BOB, "get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>"))
        assert err(reply)[:3] == ERRORS[expected]
    await wire.request(iq(BOB, "set", f"<pubsub xmlns='{PS}'><subscribe node='{NODE}' jid='{BOB}'/></pubsub>"))
    reply = await wire.request(iq(BOB, "get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>"))
    assert err(reply)[:3] == ERRORS[E.PendingSubscription]


async def test_wire_level_refusals(wire):
    reply = await wire.request(iq(BOB, "get", "<query xmlns='urn:unknown'/>"))
    assert err(reply)[:2] == ("cancel", "service-unavailable")
    deep = "<a>" * 60 + "</a>" * 60
    reply = await wire.request(iq(BOB, "get", f"<pubsub xmlns='{PS}'>{deep}</pubsub>"))
    assert err(reply)[:2] == ("modify", "bad-request")
    reply = await wire.request(iq(BOB, "get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>",
                                  to="bob\\40example.net@blog.example.org"))
    assert err(reply)[:2] == ("cancel", "item-not-found")
    reply = await wire.request(iq(BOB, "get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/><items node='{NODE}'/></pubsub>"))
    assert err(reply)[:2] == ("modify", "bad-request")


async def test_disco_and_ping(wire):
    reply = await wire.request(iq(BOB, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                                  to="blog.example.org"))
    q = reply.find("{http://jabber.org/protocol/disco#info}query")
    assert q.find("{http://jabber.org/protocol/disco#info}identity").get("category") == "pubsub"
    reply = await wire.request(iq(BOB, "get", "<ping xmlns='urn:xmpp:ping'/>", to="blog.example.org"))
    assert reply.get("type") == "result"
    await wire.request(iq(ALICE, "set", publish()))
    reply = await wire.request(iq(BOB, "get", f"<query xmlns='http://jabber.org/protocol/disco#items' node='{NODE}'/>"))
    names = [i.get("name") for i in reply.iter("{http://jabber.org/protocol/disco#items}item")]
    assert names == ["p1"]


def test_spliced_item_pages_equal_the_element_tree_build():
    """page_xml splices stored payloads; it must say exactly what building the tree would."""
    from datetime import UTC, datetime

    from xmppblog.core.model import Item, Page
    from xmppblog.pubsub import xep_0059
    from xmppblog.pubsub.xep_0060 import page_xml

    def tree(node, page, with_rsm):  # the slow path: one element per item, payloads parsed
        ps = ET.Element(f"{{{PS}}}pubsub")
        items = ET.SubElement(ps, f"{{{PS}}}items", {"node": node})
        for item in page.items:
            attrs = {"id": item.item_id, **({"publisher": item.publisher} if item.publisher else {})}
            ET.SubElement(items, f"{{{PS}}}item", attrs).append(ET.fromstring(item.payload))
        if with_rsm or not page.complete:
            ps.append(xep_0059.render(page))
        return ps

    now = datetime.now(UTC)
    payloads = ["<ns0:entry xmlns:ns0='http://www.w3.org/2005/Atom'><ns0:title>a &amp; b &lt;c&gt;</ns0:title>"
                "</ns0:entry>", "<entry xmlns='http://www.w3.org/2005/Atom'><title>ü</title></entry>"]
    for items, count, complete, rsm in ((("i&1", "x'\"y"), 2, True, True), (("p1",), None, False, False),
                                        ((), 0, True, False)):
        page = Page(tuple(Item(i, "a@e.org" if n else "", payloads[n % 2], now, now) for n, i in enumerate(items)),
                    count, 0 if items else None, complete)
        for node in ("urn:xmpp:microblog:0", "n'<&\">"):
            spliced = ET.fromstring(page_xml(node, page, rsm))
            assert ET.canonicalize(ET.tostring(spliced)) == ET.canonicalize(ET.tostring(tree(node, page, rsm)))

# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0470 attachments nodes on the wire (issue #15), as Libervia 0.9 uses them: it creates the
node with the blog's own configuration and publish_model=open (createIfNewNode: `conflict` is
fine), then each reader publishes one <attachments/> item whose id is their bare JID."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmppblog.core.model import NS_MICROBLOG, NodeRef

from .test_create_configure import LIBERVIA_COMMENTS, create
from .test_xml import ALICE, BOB, PS, err, iq, publish

NS = "urn:xmpp:pubsub-attachments:1"
NODE = NodeRef("alice@blog.example.org", NS_MICROBLOG).attachments("p1").node


def attach(item: str = "bob@example.org", body: str = "<noticed/>", ns: str = NS) -> str:
    return (f"<pubsub xmlns='{PS}'><publish node='{NODE}'><item id='{item}'>"
            f"<attachments xmlns='{ns}'>{body}</attachments></item></publish></pubsub>")


async def test_libervia_creates_then_a_reader_attaches_and_reads_back(wire):
    reply = await wire.request(iq(ALICE, "set", create(NODE, {**LIBERVIA_COMMENTS, "pubsub#max_items": "max"})))
    assert err(reply)[:3] == ("cancel", "conflict", None), "exists with the post (before it, too)"
    assert (await wire.request(iq(ALICE, "set", publish()))).get("type") == "result"
    assert err(await wire.request(iq(BOB, "set", create(NODE))))[:2] == ("auth", "forbidden")
    reply = await wire.request(iq(BOB, "set", attach(body="<reactions><reaction>👍</reaction></reactions>")))
    assert reply.get("type") == "result", ET.tostring(reply)
    assert reply.find(f".//{{{PS}}}item").get("id") == "bob@example.org"
    reply = await wire.request(iq(ALICE, "get", f"<pubsub xmlns='{PS}'><items node='{NODE}'/></pubsub>"))
    items = reply.findall(f".//{{{PS}}}item")
    assert [i.get("id") for i in items] == ["bob@example.org"]
    assert items[0].find(f"{{{NS}}}attachments/{{{NS}}}reactions/{{{NS}}}reaction").text == "👍"
    # its configuration is the blog's, and says who may publish: any reader
    reply = await wire.request(iq(ALICE, "get", f"<pubsub xmlns='{PS}#owner'><configure node='{NODE}'/></pubsub>"))
    fields = {f.get("var"): f.findtext("{jabber:x:data}value") for f in reply.iter("{jabber:x:data}field")}
    assert fields["pubsub#publish_model"] == "open" and fields["pubsub#access_model"] == "open", fields


async def test_wrong_ids_and_payloads_are_refused(wire):
    await wire.request(iq(ALICE, "set", publish()))
    assert err(await wire.request(iq(BOB, "set", attach(item="alice@example.org"))))[:2] == ("modify", "bad-request")
    assert err(await wire.request(iq(BOB, "set", attach(ns="urn:other"))))[:2] == ("modify", "bad-request")
    entry = publish(node=NODE, item=" id='bob@example.org'")
    assert err(await wire.request(iq(BOB, "set", entry)))[:2] == ("modify", "bad-request")


async def test_blog_jids_advertise_attachments(wire):
    reply = await wire.request(iq(BOB, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>"))
    assert NS in {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")}

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Node creation errors and the standard configuration fields clients send (issue #15, XEP-0060 §8.1-8.2).

Creating a node this service does not host is `forbidden` (§8.1.3), not
`item-not-found`; a create without a node is `not-acceptable` +
`nodeid-required`. Libervia sends every standard field it cares about on each
create and configure (`pubsub#persist_items`, `pubsub#deliver_payloads`,
`pubsub#send_item_subscribe`, `pubsub#publish_model`): the value this service
has is accepted, a value it cannot honour is refused, hints are ignored.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xmppblog.core import errors as E
from xmppblog.pubsub.xep_0060 import config_changes
from xmppblog.core.pubsub import Limits

from .test_xml import ALICE, BOB, NODE, PS, err, iq, publish

COMMENTS = f"{NODE}:comments/p1"


def form(fields: dict[str, str], form_type: str = "node_config") -> str:
    fs = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields.items())
    return (f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            f"<value>{PS}#{form_type}</value></field>{fs}</x>")


def create(node: str | None, fields: dict[str, str] | None = None) -> str:
    attr = f" node='{node}'" if node is not None else ""
    conf = f"<configure>{form(fields)}</configure>" if fields is not None else ""
    return f"<pubsub xmlns='{PS}'><create{attr}/>{conf}</pubsub>"


def configure(fields: dict[str, str], node: str = NODE) -> str:
    return f"<pubsub xmlns='{PS}#owner'><configure node='{node}'>{form(fields)}</configure></pubsub>"


#: what Libervia 0.9 sends creating or configuring a blog (plugin_xep_0277.py mbSetAccess)
LIBERVIA_BLOG = {"pubsub#access_model": "open", "pubsub#persist_items": "1", "pubsub#deliver_payloads": "1",
                 "pubsub#send_item_subscribe": "1"}
#: and a post's comments node (plugin_xep_0277.py, comments options)
LIBERVIA_COMMENTS = {**LIBERVIA_BLOG, "pubsub#publish_model": "open"}


@pytest.mark.parametrize("frm,to,node", [
    (ALICE, "alice@blog.example.org", "other"),                  # the owner, a node not hosted here
    (BOB, "alice@blog.example.org", "other"),                    # someone else's blog
    (ALICE, "blog.example.org", "other"),                        # the service JID
    (ALICE, "blog.example.org", NODE),
], ids=["owner-other", "other-user", "service-other", "service-timeline"])
async def test_creating_other_nodes_is_forbidden(wire, frm, to, node):
    reply = await wire.request(iq(frm, "set", create(node), to=to))
    etype, cond, app, text = err(reply)
    assert (etype, cond, app) == ("auth", "forbidden", None) and text


async def test_create_without_node_is_not_acceptable_nodeid_required(wire):
    reply = await wire.request(iq(ALICE, "set", create(None)))
    assert err(reply)[:3] == ("modify", "not-acceptable", "nodeid-required")


async def test_libervia_creates_and_configures_a_blog(wire):
    reply = await wire.request(iq(ALICE, "set", create(NODE, LIBERVIA_BLOG)))
    assert reply.get("type") == "result", ET.tostring(reply)
    await wire.request(iq(ALICE, "set", publish()))
    reply = await wire.request(iq(ALICE, "set", create(NODE, LIBERVIA_BLOG)))
    assert err(reply)[:3] == ("cancel", "conflict", None)  # Libervia then configures
    for fields in (LIBERVIA_BLOG, {**LIBERVIA_BLOG, "pubsub#publish_model": "publishers",
                                   "pubsub#node_type": "leaf", "pubsub#notify_config": "1",
                                   "pubsub#send_last_published_item": "on_sub_and_presence",
                                   "pubsub#description": "notes", "pubsub#max_items": "max"}):
        reply = await wire.request(iq(ALICE, "set", configure(fields)))
        assert reply.get("type") == "result", ET.tostring(reply)


@pytest.mark.parametrize("var,value", [
    ("pubsub#publish_model", "open"), ("pubsub#node_type", "collection"), ("pubsub#persist_items", "0"),
    ("pubsub#presence_based_delivery", "true"), ("pubsub#colour", "red"),
])
async def test_values_the_node_cannot_honour_are_refused(wire, var, value):
    await wire.request(iq(ALICE, "set", publish()))
    reply = await wire.request(iq(ALICE, "set", configure({var: value})))
    etype, cond, app, text = err(reply)
    assert (etype, cond, app) == ("modify", "not-acceptable", "invalid-options") and var in text


async def test_the_configuration_form_submitted_back_is_accepted(wire):
    await wire.request(iq(ALICE, "set", publish()))
    reply = await wire.request(iq(ALICE, "get", f"<pubsub xmlns='{PS}#owner'><configure node='{NODE}'/></pubsub>"))
    x = reply.find(".//{jabber:x:data}x")
    x.set("type", "submit")
    for f in x.iter("{jabber:x:data}field"):
        for o in f.findall("{jabber:x:data}option"):
            f.remove(o)
    back = (f"<pubsub xmlns='{PS}#owner'><configure node='{NODE}'>{ET.tostring(x, encoding='unicode')}"
            "</configure></pubsub>")
    reply = await wire.request(iq(ALICE, "set", back))
    assert reply.get("type") == "result", ET.tostring(reply)


async def test_libervia_comments_node_options_are_accepted(wire):
    await wire.request(iq(ALICE, "set", publish()))
    reply = await wire.request(iq(ALICE, "set", configure(LIBERVIA_COMMENTS, COMMENTS)))
    assert reply.get("type") == "result", ET.tostring(reply)
    reply = await wire.request(iq(ALICE, "set", configure({"pubsub#publish_model": "publishers"}, COMMENTS)))
    assert err(reply)[:3] == ("modify", "not-acceptable", "invalid-options")


async def test_publish_options_that_cannot_be_met_are_a_precondition(wire):
    po = f"<publish-options>{form({'pubsub#persist_items': 'false'}, 'publish-options')}</publish-options>"
    reply = await wire.request(iq(ALICE, "set", publish().replace("</pubsub>", po + "</pubsub>")))
    assert err(reply)[:3] == ("cancel", "conflict", "precondition-not-met")
    po = f"<publish-options>{form(LIBERVIA_BLOG, 'publish-options')}</publish-options>"
    reply = await wire.request(iq(ALICE, "set", publish().replace("</pubsub>", po + "</pubsub>")))
    assert reply.get("type") == "result", ET.tostring(reply)


def test_config_changes_fixed_values():
    limits = Limits()
    assert config_changes({"pubsub#publish_model": ["publishers"], "pubsub#persist_items": ["true"],
                           "pubsub#send_item_subscribe": ["0"]}, limits, strict=True) == {}
    assert config_changes({"pubsub#publish_model": ["open"]}, limits, strict=True, comments=True) == {}
    with pytest.raises(E.InvalidOptions):
        config_changes({"pubsub#publish_model": ["open"]}, limits, strict=True)
    with pytest.raises(E.InvalidOptions):
        config_changes({"pubsub#persist_items": ["maybe"]}, limits, strict=True)
    with pytest.raises(E.PreconditionNotMet):
        config_changes({"pubsub#node_type": ["collection"]}, limits, strict=False)

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Every data form the service sends types every field (issue #15).

XEP-0004 §3.3 makes text-single the default of a field without `type`, but
wokkel, and so Libervia, fails on such fields (`li info disco`). Each form the
service can send is asked for here and walked: every <field/> names its type,
and the fields of a multi-item result are typed by its <reported/> header.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xmppblog.pubsub import forms

from ..support.stanzas import DISCO_INFO, MB, PSO, publish, subscribe
from ..support.world import World

X = "{jabber:x:data}"
ALICE, BOB, ADMIN = "alice@example.org", "bob@example.org", "admin@example.org"
BLOG = "alice@blog.example.org"
SERVICE = "blog.example.org"
COMMANDS = "http://jabber.org/protocol/commands"
TYPES = {"boolean", "fixed", "hidden", "jid-multi", "jid-single", "list-multi", "list-single",
         "text-multi", "text-private", "text-single"}


@pytest.fixture
async def world(tmp_path):
    w = await World.start(tmp_path, extra="[spamguard]\nlocal_publishes_per_minute = 0\n"
                                          "im_commands_per_minute = 0\nsubscribes_per_minute = 0\n")
    yield w
    await w.close()


def untyped(stanzas: list[ET.Element]) -> tuple[int, list[str]]:
    """(forms found, the fields in them without a proper type)."""
    bad, count = [], 0
    for stanza in stanzas:
        for x in stanza.iter(f"{X}x"):
            count += 1
            reported = {f.get("var"): f.get("type") for f in x.findall(f"{X}reported/{X}field")}
            for f in x.findall(f"{X}field") + x.findall(f"{X}reported/{X}field"):
                if f.get("type") not in TYPES:
                    bad.append(f"{x.get('type')} form: {ET.tostring(f, encoding='unicode')}")
            for f in x.findall(f"{X}item/{X}field"):  # XEP-0004 §3.4: typed by <reported/>
                if reported.get(f.get("var")) not in TYPES:
                    bad.append(f"item field not in <reported/>: {f.get('var')}")
    return count, bad


def command(node: str, x: str = "") -> str:
    return f"<command xmlns='{COMMANDS}' node='{node}' action='execute'>{x}</command>"


def submit(**fields: str) -> str:
    fs = "".join(f"<field var='{k}'><value>{v}</value></field>" for k, v in fields.items())
    return f"<x xmlns='jabber:x:data' type='submit'>{fs}</x>"


async def test_every_form_the_service_sends_types_every_field(world: World):
    await world.iq(f"{ALICE}/pc", BLOG, "set", publish(text="hello #forms", item_id="p1"))
    await world.iq("carol@example.org/pc", "carol@blog.example.org", "set", publish(text="public #forms"))
    await world.iq(f"{ALICE}/pc", BLOG, "set", f"<pubsub xmlns='{PSO}'><configure node='{MB}'>"
                   "<x xmlns='jabber:x:data' type='submit'><field var='pubsub#access_model'>"
                   "<value>authorize</value></field></x></configure></pubsub>")
    await world.drain()
    replies = []
    for frm, to, node in ((BOB, SERVICE, None), (BOB, SERVICE, MB), (BOB, BLOG, None), (ALICE, BLOG, MB),
                          (ALICE, BLOG, COMMANDS), (ALICE, BLOG, "http://jabber.org/protocol/pubsub#get-pending")):
        attr = f" node='{node}'" if node else ""
        replies.append(await world.iq(f"{frm}/pc", to, "get", f"<query xmlns='{DISCO_INFO}'{attr}/>"))
    replies.append(await world.iq(f"{ALICE}/pc", BLOG, "get",
                                  f"<pubsub xmlns='{PSO}'><configure node='{MB}'/></pubsub>"))
    replies.append(await world.iq(f"{ALICE}/pc", BLOG, "get", f"<pubsub xmlns='{PSO}'><default/></pubsub>"))
    # an approval request: the owner gets an authorization form (XEP-0060 §8.6)
    await world.iq(f"{BOB}/pc", BLOG, "set", subscribe(BOB))
    authorization = [m for m in await world.drain() if m.find(f"{X}x") is not None]
    assert authorization, "no authorization request"
    replies += authorization
    replies.append(await world.iq(f"{ALICE}/pc", BLOG, "set",
                                  command("http://jabber.org/protocol/pubsub#get-pending")))
    for node in ("xmppblog#domain-block", "xmppblog#domain-allow"):
        replies.append(await world.iq(f"{ADMIN}/pc", SERVICE, "set", command(node)))
    replies.append(await world.iq(f"{BOB}/pc", SERVICE, "set", command("xmppblog#search")))
    results = await world.iq(f"{BOB}/pc", SERVICE, "set", command("xmppblog#search", submit(query="forms")))
    assert results.findall(f".//{X}item"), ET.tostring(results)
    replies.append(results)

    assert not [r for r in replies if r.get("type") == "error"], [ET.tostring(r) for r in replies]
    count, bad = untyped(replies)
    assert count == 10 and not bad, (count, bad)


def test_form_builder_types_fields_that_name_no_type():
    x = (forms.Form("result").field("FORM_TYPE", "urn:x", None).field("flag", True).field("n", 3)
         .field("pick", "a", options=[("a", "A")]).field("lines", ["a", "b"]).field("empty").el)
    assert [(f.get("var"), f.get("type")) for f in x] == [
        ("FORM_TYPE", "hidden"), ("flag", "boolean"), ("n", "text-single"), ("pick", "list-single"),
        ("lines", "text-multi"), ("empty", "text-single")]

# SPDX-License-Identifier: AGPL-3.0-or-later
"""The XEP-0050 command xmppblog#discoverable on the service JID (issue #17): a form with
the user's choice, a submit that changes it (a post from then on reaches the firehose), the
command listed for local users, refused to others, cancellable, and a bad value refused."""

from __future__ import annotations

import pytest

from ..support.stanzas import publish
from ..support.world import World
from .test_forms import COMMANDS, SERVICE, X, command, submit

ALICE, REMOTE = "alice@example.org", "zed@other.org"
FIREHOSE = "urn:xmppblog:firehose:0"


@pytest.fixture
async def world(tmp_path):
    w = await World.start(tmp_path, extra="[spamguard]\nlocal_publishes_per_minute = 0\n")
    yield w
    await w.close()


def field_value(reply, var: str) -> str | None:
    for f in reply.iter(f"{X}field"):
        if f.get("var") == var:
            v = f.find(f"{X}value")
            return v.text if v is not None else None
    return None


async def firehose_ids(world: World) -> list[str]:
    reply = await world.iq(f"{REMOTE}/pc", SERVICE, "get",
                           f"<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{FIREHOSE}'/></pubsub>")
    return [i.get("id") for i in reply.iter("{http://jabber.org/protocol/pubsub}item")]


async def test_the_discoverable_command(world: World):
    listed = await world.iq(f"{ALICE}/pc", SERVICE, "get",
                            f"<query xmlns='http://jabber.org/protocol/disco#items' node='{COMMANDS}'/>")
    assert "xmppblog#discoverable" in [i.get("node") for i in listed.iter("{http://jabber.org/protocol/disco#items}item")]
    form = await world.iq(f"{ALICE}/pc", SERVICE, "set", command("xmppblog#discoverable"))
    assert form.find(f".//{X}x") is not None and field_value(form, "discoverable") == "0"
    await world.iq(f"{ALICE}/pc", "alice@blog.example.org", "set", publish(text="before", item_id="p1"))
    done = await world.iq(f"{ALICE}/pc", SERVICE, "set", command("xmppblog#discoverable", submit(discoverable="1")))
    assert done.find(f".//{{{COMMANDS}}}command").get("status") == "completed"
    await world.iq(f"{ALICE}/pc", "alice@blog.example.org", "set", publish(text="after", item_id="p2"))
    assert await firehose_ids(world) == ["alice/p2"], "from then on only"
    again = await world.iq(f"{ALICE}/pc", SERVICE, "set", command("xmppblog#discoverable"))
    assert field_value(again, "discoverable") == "1"
    await world.iq(f"{ALICE}/pc", SERVICE, "set", command("xmppblog#discoverable", submit(discoverable="false")))
    assert await firehose_ids(world) == [], "withdrawn"


async def test_the_discoverable_command_refuses_what_it_should(world: World):
    refused = await world.iq(f"{REMOTE}/pc", SERVICE, "set", command("xmppblog#discoverable"))
    assert refused.get("type") == "error" and refused.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}forbidden") \
        is not None
    bad = await world.iq(f"{ALICE}/pc", SERVICE, "set", command("xmppblog#discoverable", submit(discoverable="maybe")))
    assert bad.get("type") == "error" and bad.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}bad-request") is not None
    cancel = await world.iq(f"{ALICE}/pc", SERVICE, "set", f"<command xmlns='{COMMANDS}' "
                            "node='xmppblog#discoverable' sessionid='s1' action='cancel'/>")
    assert cancel.find(f".//{{{COMMANDS}}}command").get("status") == "canceled"
    listed = await world.iq(f"{REMOTE}/pc", SERVICE, "get",
                            f"<query xmlns='http://jabber.org/protocol/disco#items' node='{COMMANDS}'/>")
    assert "xmppblog#discoverable" not in [i.get("node") for i in listed.iter("{http://jabber.org/protocol/disco#items}item")]


async def test_the_network_commands(world: World):
    """xmppblog#trends, #directory and #suggest (issue #17): the chat's trends, directory and
    suggest as XEP-0004 result tables, every field typed."""
    from .test_forms import untyped
    await world.iq(f"{ALICE}/pc", SERVICE, "set", command("xmppblog#discoverable", submit(discoverable="1")))
    await world.iq(f"{ALICE}/pc", "alice@blog.example.org", "set", publish(text="hello #netcmd", item_id="p1"))
    trends = await world.iq(f"{REMOTE}/pc", SERVICE, "set", command("xmppblog#trends"))
    assert "#netcmd" in [v.text for v in trends.iter(f"{X}value")]
    form = await world.iq(f"{REMOTE}/pc", SERVICE, "set", command("xmppblog#directory"))
    assert field_value(form, "word") is None and form.find(f".//{X}x").get("type") == "form"
    listed = await world.iq(f"{REMOTE}/pc", SERVICE, "set", command("xmppblog#directory", submit(word="alice")))
    assert ALICE in [v.text for v in listed.iter(f"{X}value")]
    suggested = await world.iq("bob@example.org/pc", SERVICE, "set", command("xmppblog#suggest"))
    assert ALICE in [v.text for v in suggested.iter(f"{X}value")]
    count, bad = untyped([trends, form, listed, suggested])
    assert count == 4 and not bad, bad

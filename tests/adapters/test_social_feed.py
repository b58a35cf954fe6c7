# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0472 (Pubsub Social Feed): advertised, and the nodes described as its profiles want."""

from __future__ import annotations

import pytest

from ..support.stanzas import DISCO_INFO, MB, publish
from ..support.world import World

X = "{jabber:x:data}"
DI = f"{{{DISCO_INFO}}}"
SOCIAL = "urn:xmpp:pubsub-social-feed:1"
ALICE, BLOG, SERVICE = "alice@example.org", "alice@blog.example.org", "blog.example.org"


@pytest.fixture
async def world(tmp_path):
    w = await World.start(tmp_path)
    yield w
    await w.close()


def meta(reply) -> dict[str, str]:
    form = reply.find(f".//{X}x")
    return {f.get("var"): f.findtext(f"{X}value") for f in form.findall(f"{X}field")}


async def test_the_social_feed_profiles_are_advertised_and_described(world: World):
    await world.iq(f"{ALICE}/pc", BLOG, "set", publish(text="hello", item_id="p1"))
    for to in (BLOG, SERVICE):
        reply = await world.iq("bob@example.org/pc", to, "get", f"<query xmlns='{DISCO_INFO}'/>")
        assert SOCIAL in {f.get("var") for f in reply.findall(f".//{DI}feature")}, to
    blog = await world.iq("bob@example.org/pc", BLOG, "get", f"<query xmlns='{DISCO_INFO}' node='{MB}'/>")
    assert SOCIAL in {f.get("var") for f in blog.findall(f".//{DI}feature")}
    fields = meta(blog)
    assert fields["pubsub#type"] == MB, "a user's blog is the microblog profile"
    assert fields["pubsub#max_items"] == "max", "XEP-0472: max_items is max"
    comments = await world.iq("bob@example.org/pc", BLOG, "get",
                              f"<query xmlns='{DISCO_INFO}' node='{MB}:comments/p1'/>")
    assert meta(comments)["pubsub#type"] == SOCIAL, "a comments node is the base profile"


async def test_the_node_configuration_states_what_the_profile_expects(world: World):
    await world.iq(f"{ALICE}/pc", BLOG, "set", publish(text="hello", item_id="p1"))
    reply = await world.iq(f"{ALICE}/pc", BLOG, "get",
                           f"<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='{MB}'/></pubsub>")
    fields = meta(reply)
    assert fields["pubsub#notify_retract"] in ("1", "true") and fields["pubsub#persist_items"] in ("1", "true")
    assert fields["pubsub#send_last_published_item"] == "never"
    assert fields["pubsub#publish_model"] == "publishers"

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #6 (XMPP part): the public timeline node on the service JID."""

from __future__ import annotations

from .test_pubsub import NODE, is_publish, is_retract

SERVICE = "blog.alpha.test"


async def test_public_timeline_carries_public_posts_only(clients):
    dave, erin, bob = await clients("dave"), await clients("erin"), await clients("bob")
    items = await bob.plugin["xep_0030"].get_items(jid=SERVICE)
    assert (SERVICE, NODE, "Public timeline: every public post of this server") in items["disco_items"]["items"]
    r = await bob.pubsub.subscribe(SERVICE, NODE)
    assert r["pubsub"]["subscription"]["subscription"] == "subscribed"
    posted = (await dave.say("public words for everyone")).split("#")[1]
    m = await bob.inbox.wait(lambda m: m["from"].bare == SERVICE and is_publish()(m))
    assert m is not None and "public words for everyone" in str(m)
    tl_id = m.xml.find(".//{http://jabber.org/protocol/pubsub#event}item").get("id")
    assert tl_id.startswith(f"dave/{posted}")
    page = await bob.pubsub.get_items(SERVICE, NODE, max_items=5)
    assert "public words for everyone" in str(page)
    # read-only for users
    from .test_pubsub import entry
    err = await dave.error_of(dave.pubsub.publish(SERVICE, NODE, payload=entry("sneaky")))
    assert err[:2] == ("auth", "forbidden")
    # protected posts never appear; going protected takes earlier posts off too
    assert (await erin.say("protect on")).startswith("Your blog is now protected")
    await erin.say("protected words")
    assert await bob.inbox.wait(lambda m: m["from"].bare == SERVICE and "protected words" in str(m),
                                timeout=1.5) is None
    assert "protected words" not in str(await bob.pubsub.get_items(SERVICE, NODE, max_items=20))
    await erin.say("protect off")
    # a retraction reaches timeline subscribers too
    assert (await dave.say(f"delete {posted}")).startswith("Deleted")
    assert await bob.inbox.wait(lambda m: m["from"].bare == SERVICE and is_retract(tl_id)(m))
    assert "public words for everyone" not in str(await bob.pubsub.get_items(SERVICE, NODE, max_items=20))
    await bob.pubsub.unsubscribe(SERVICE, NODE)

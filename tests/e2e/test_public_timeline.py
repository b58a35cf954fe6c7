# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #6 (XMPP part): the public timeline node on the service JID."""

from __future__ import annotations

from ..support import ports
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


async def test_search_by_chat_and_by_command(clients, component):
    from ..support.clients import raw_iq
    frank, grace = await clients("frank"), await clients("peggy")
    await frank.say("searchable #Fediverse post about gardening")
    await grace.say("protect on")
    await grace.say("secret gardening notes")
    answer = await frank.say("search gardening")
    assert answer.startswith("1 public post(s) match")
    assert "frank@alpha.test: searchable #Fediverse post about gardening" in answer
    assert "secret" not in answer
    assert "frank@alpha.test" in await frank.say("search #fediverse from:frank@alpha.test")
    assert await frank.say("search nothingmatchesthis") == "No public post matches nothingmatchesthis."
    await grace.say("protect off")
    # XEP-0050 search on the service JID: a form, then a multi-item result form
    c = "http://jabber.org/protocol/commands"
    r = await raw_iq(frank, SERVICE, "set", f"<command xmlns='{c}' node='xmppblog#search' action='execute'/>")
    sid = r.xml.find(f"{{{c}}}command").get("sessionid")
    r = await raw_iq(frank, SERVICE, "set",
                     f"<command xmlns='{c}' node='xmppblog#search' sessionid='{sid}'>"
                     "<x xmlns='jabber:x:data' type='submit'><field var='query'><value>gardening</value></field>"
                     "</x></command>")
    rows = [{f.get("var"): f.find("{jabber:x:data}value").text for f in row}
            for row in r.xml.findall(".//{jabber:x:data}item")]
    # re-opened, peggy's whole blog is public again: the post of her protected days too
    assert sorted(v["author"] for v in rows) == ["frank@alpha.test", "peggy@alpha.test"]
    values = next(v for v in rows if v["author"] == "frank@alpha.test")
    assert "gardening" in values["text"] and values["uri"].startswith("xmpp:frank@blog.alpha.test?;node=")


async def test_http_serves_what_xmpp_published_escaped(clients, component, alpha):
    """Injection: markup posted through XMPP renders as text on every HTTP path."""
    import aiohttp
    import feedparser
    judy = await clients("judy")
    payload = "<script>alert(1)</script><img src=x onerror=alert(2)> http-visible"
    posted = (await judy.say(payload)).split("#")[1]
    base = f"http://{alpha.ip}:{ports.HTTP}"
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/u/judy", "/search?q=visible"):
            async with http.get(base + path) as r:
                text = await r.text()
                assert r.status == 200, path
                assert "http-visible" in text, path
                assert "<script>alert(1)" not in text and "<img src=x" not in text, path
                assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path
        async with http.get(f"{base}/api/search?q=visible") as r:
            found = await r.json()
            assert found["posts"][0]["text"] == payload and found["posts"][0]["id"].startswith(posted)
        async with http.get(f"{base}/feeds/users/judy.atom") as r:
            feed = feedparser.parse(await r.read())
            assert not feed.bozo and feed.entries[0].title == payload

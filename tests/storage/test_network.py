# SPDX-License-Identifier: AGPL-3.0-or-later
"""The network-wide view (core/network.py, issue #17) on both databases: the network
timeline, trends, the directory and suggestions cover this server's consenting users and
an aggregator's sources, and nothing else; and the HTTP API that serves them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from aiohttp.test_utils import TestClient, TestServer

from xmppblog.core.attribution import Claim
from xmppblog.core.model import NS_FIREHOSE, NS_MICROBLOG, Actor, NodeRef
from xmppblog.core.remote_feeds import Incoming
from xmppblog.http.server import HttpApi
from xmppblog.pubsub.xep_0277 import parse_entry

from .test_service_storage import ALICE, BOB, CAROL, draft

SOURCE = "blog.source.example"
FIREHOSE = NodeRef(SOURCE, NS_FIREHOSE)


def blog(actor: Actor) -> NodeRef:
    return NodeRef(f"{actor.jid.split('@')[0]}@blog.example.org", NS_MICROBLOG)


def remote_entry(author: str, text: str):
    return parse_entry(ET.fromstring(f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>{text}</title>"
                                     f"<author><uri>xmpp:{author}</uri></author></entry></item>"), 65536)


async def from_source(core, author: str, item_id: str, text: str) -> None:
    """A verified, consented entry of the source's firehose, as federation/receive.py hands it on."""
    await core.remote.ingest(SOURCE, NS_FIREHOSE, [
        Incoming(item_id, remote_entry(author, text), Claim(item_id, f"xmpp:{author}", True))], (),
        "source.example")


@pytest.fixture
async def network(stack):
    core, uow, clock = stack
    await core.remote.follow_source(FIREHOSE, 1000)
    for actor in (ALICE, BOB):
        await core.social.discoverable(actor, True)
    return core, clock


async def test_the_network_view_holds_consenting_users_and_sources_only(network):
    core, clock = network
    await core.pubsub.publish(ALICE, blog(ALICE), "a1", draft("alice on #gardening"))
    await core.pubsub.publish(BOB, blog(BOB), "b1", draft("bob on #gardening too"))
    await core.pubsub.publish(CAROL, blog(CAROL), "c1", draft("carol never consented #gardening"))
    await from_source(core, "ann@source.example", "ann/1", "ann from afar #gardening")
    await from_source(core, "ann@source.example", "ann/2", "ann again #gardening")
    posts, _ = await core.network.timeline(None, 10)
    assert [p.item.item_id for _, p in posts] == ["ann/2", "ann/1", "b1", "a1"], "carol did not consent"
    listed = {(e.jid, e.server, e.posts, e.local) for e in await core.network.directory()}
    assert listed == {("alice@example.org", "alice@blog.example.org", 1, True),
                      ("bob@example.org", "bob@blog.example.org", 1, True),
                      ("ann@source.example", SOURCE, 2, False)}, "carol did not consent: not listed"
    assert [e.jid for e in await core.network.directory("ANN")] == ["ann@source.example"]
    hour, day = await core.network.trends()
    assert [(t.tag, t.now) for t in hour] == [("gardening", 3)], "distinct authors: ann counts once; not carol"
    # an hour later, two more authors take up #compost: it rises above #gardening
    clock.advance(3600)
    await core.pubsub.publish(ALICE, blog(ALICE), "a2", draft("#compost"))
    await from_source(core, "ann@source.example", "ann/3", "#compost")
    hour, day = await core.network.trends()
    assert [t.tag for t in hour] == ["compost"] and hour[0].now == 2
    assert {t.tag for t in day} == {"compost", "gardening"}


async def test_suggestions(network):
    core, clock = network
    await core.pubsub.publish(ALICE, blog(ALICE), "a1", draft("hello"))
    await from_source(core, "ann@source.example", "ann/1", "about quokkas")
    await from_source(core, "ben@source.example", "ben/1", "about owls")
    await from_source(core, "ben@source.example", "ben/2", "about owls again")
    # carol follows nobody: the most active discoverable authors
    assert [s.jid for s in await core.network.suggestions(CAROL.jid)] == [
        "ben@source.example", "alice@example.org", "ann@source.example"]
    # carol follows bob, who follows alice; carol tracks 'quokkas'
    await core.pubsub.subscribe(CAROL, blog(BOB), CAROL.jid)
    await core.pubsub.subscribe(BOB, blog(ALICE), BOB.jid)
    await core.social.track(CAROL, "quokkas")
    found = await core.network.suggestions(CAROL.jid)
    assert [(s.jid, s.why) for s in found][:2] == [
        ("alice@example.org", "followed by 1 of the people you follow"),
        ("ann@source.example", "writes about 'quokkas', which you track")]
    assert "bob@example.org" not in [s.jid for s in found], "already followed"


async def test_the_http_api_of_the_network_view(network):
    core, clock = network
    await core.pubsub.publish(ALICE, blog(ALICE), "a1", draft("alice #gardening"))
    await from_source(core, "ann@source.example", "ann/1", "ann #gardening")

    async def stats():
        return {}

    api = HttpApi(core.pubsub, core.social, core.search, "http://blog.example.org", stats, network=core.network,
                  sources=lambda: {SOURCE: "following"})
    client = TestClient(TestServer(api.app))
    await client.start_server()
    try:
        r = await client.get("/api/network/timeline?limit=1")
        page = await r.json()
        assert [p["id"] for p in page["posts"]] == ["ann/1"] and page["posts"][0]["source"] == SOURCE
        r = await client.get(f"/api/network/timeline?limit=1&cursor={page['next_cursor']}")
        assert [p["id"] for p in (await r.json())["posts"]] == ["a1"]
        r = await client.get("/api/network/timeline?cursor=v9-x")
        assert r.status == 400
        r = await client.get("/feeds/network.atom")
        assert r.status == 200 and "ann #gardening" in await r.text()
        r = await client.get("/network")
        page = await r.text()
        assert r.status == 200 and "ann@source.example" in page and "alice@example.org" in page
        assert 'href="/tags/gardening"' in page, "today's rising tags"
        trends = await (await client.get("/api/trends")).json()
        assert trends["hour"][0]["tag"] == "gardening" and trends["hour"][0]["authors"] == 2
        d = await (await client.get("/api/directory?q=ann")).json()
        assert d["users"] == [{"jid": "ann@source.example", "server": SOURCE, "posts": 1, "local": False}]
        assert d["sources"] == [{"source": SOURCE, "state": "following"}]
        r = await client.get("/api/suggestions?for=carol@example.org")
        assert [s["jid"] for s in (await r.json())["suggestions"]] == ["alice@example.org", "ann@source.example"]
        # what bob follows and tracks is his: anonymous callers get public figures only
        await core.social.track(BOB, "gardening")
        r = await client.get("/api/suggestions?for=bob@example.org")
        assert all("track" not in s["why"] and "follow" not in s["why"] for s in (await r.json())["suggestions"])
        assert (await client.get("/api/suggestions?for=not a jid")).status == 400
        assert r.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        await client.close()

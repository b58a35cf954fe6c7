# SPDX-License-Identifier: AGPL-3.0-or-later
"""HTTP API, feeds and pages with aiohttp's test client, over real storage."""

from __future__ import annotations

import feedparser
import pytest
from aiohttp.test_utils import TestClient, TestServer

from xmppblog.core.model import NS_MICROBLOG, AccessModel, NodeRef
from xmppblog.http.server import HttpApi

from ..storage.test_service_storage import ALICE, CAROL, draft

SCRIPT = "<script>alert('x')</script> & <b>bold</b>"


@pytest.fixture
async def http(stack):
    core, uow, clock = stack
    service = core.pubsub

    async def stats():
        return {"ok": True}

    api = HttpApi(service, core.social, core.search, "http://blog.example.org", stats, searches_per_minute=0)
    client = TestClient(TestServer(api.app))
    await client.start_server()
    yield service, client
    await client.close()


def ref(user):
    return NodeRef(f"{user}@blog.example.org", NS_MICROBLOG)


async def test_api_pages_and_cursor(http):
    service, client = http
    for i in range(3):
        await service.publish(ALICE, ref("alice"), f"p{i}", draft(f"post number {i} #tagged"))
    r = await client.get("/api/users/alice/posts?limit=2")
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    body = await r.json()
    assert [p["id"] for p in body["posts"]] == ["p2", "p1"] and body["next_cursor"] == "p1"
    body = await (await client.get(f"/api/users/alice/posts?limit=2&cursor={body['next_cursor']}")).json()
    assert [p["id"] for p in body["posts"]] == ["p0"] and body["next_cursor"] is None
    post = await (await client.get("/api/users/alice/posts/p1")).json()
    assert post["author"] == "alice@example.org" and post["replies"] == []
    timeline = await (await client.get("/api/timeline")).json()
    assert [p["id"] for p in timeline["posts"]] == ["p2", "p1", "p0"]
    users = await (await client.get("/api/users")).json()
    assert [(u["jid"], u["posts"]) for u in users["users"]] == [("alice@example.org", 3)]
    found = await (await client.get("/api/search?q=number+%23tagged")).json()
    assert found["total"] == 3
    spec = await (await client.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.") and "/api/search" in spec["paths"]
    assert (await client.get("/api/users/alice/posts?limit=0")).status == 400
    assert (await client.get("/api/users/nobody/posts/zz")).status == 404
    assert (await client.get("/api/search?q=")).status == 400


async def test_feeds_are_valid_atom(http):
    service, client = http
    await service.publish(ALICE, ref("alice"), "f1", draft("feed me #atom"))
    for path in ("/feeds/users/alice.atom", "/feeds/timeline.atom", "/feeds/tags/atom.atom",
                 "/feeds/search.atom?q=feed"):
        r = await client.get(path)
        assert r.status == 200 and r.content_type == "application/atom+xml", path
        parsed = feedparser.parse(await r.read())
        assert not parsed.bozo, (path, parsed.bozo_exception)
        assert parsed.version == "atom10"
        assert [e.title for e in parsed.entries] == ["feed me #atom"], path
        assert parsed.entries[0].author_detail.href == "xmpp:alice@example.org"


async def test_user_text_is_escaped_everywhere(http):
    service, client = http
    await service.publish(ALICE, ref("alice"), "x1", draft(SCRIPT.replace("&", "&amp;").replace("<", "&lt;")))
    for path in ("/", "/u/alice", "/u/alice/x1", "/search?q=bold"):
        text = await (await client.get(path)).text()
        assert "<script>alert" not in text and "<b>bold" not in text, path
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text, path
    body = await (await client.get("/api/users/alice/posts/x1")).json()
    assert body["text"] == SCRIPT  # JSON carries the text; a client renders it as text
    entry = feedparser.parse(await (await client.get("/feeds/users/alice.atom")).read()).entries[0]
    assert entry.title == SCRIPT


async def test_protected_posts_never_appear(http):
    service, client = http
    await service.publish(CAROL, ref("carol"), "s1", draft("carol's secret plans"))
    await service.configure(CAROL, ref("carol"), {"access_model": AccessModel.AUTHORIZE})
    await service.publish(CAROL, ref("carol"), "s2", draft("more secret plans"))
    for path in ("/api/users/carol/posts", "/api/users/carol/posts/s1", "/feeds/users/carol.atom",
                 "/u/carol", "/u/carol/s2"):
        r = await client.get(path)
        assert r.status == 404, path
        assert "secret" not in await r.text(), path
    for path in ("/api/timeline", "/api/search?q=secret", "/feeds/timeline.atom", "/feeds/search.atom?q=secret",
                 "/", "/search?q=secret", "/api/users"):
        r = await client.get(path)
        text = await r.text()
        assert r.status == 200 and "secret plans" not in text and "carol@" not in text, path

# SPDX-License-Identifier: AGPL-3.0-or-later
"""HTTP API, feeds and pages with aiohttp's test client, over real storage."""

from __future__ import annotations

from html.parser import HTMLParser
from xml.sax.saxutils import escape

import feedparser
import pytest
from aiohttp.test_utils import TestClient, TestServer

from xmppblog.core.model import NS_MICROBLOG, AccessModel, NodeRef
from xmppblog.http.pages import qr_svg
from xmppblog.http.server import PAGE_CSP, HttpApi

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
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text, path  # Jinja2's (markupsafe's) escape
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


class Parsed(HTMLParser):
    """What a page is made of: its feed links in <head>, and every link and element in post texts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.alternates: list[dict[str, str]] = []   # <link rel=alternate> in <head>
        self.links: list[dict[str, str]] = []        # every <a>, with its text
        self.in_text: list[str] = []                 # elements inside a post's <p class="text">
        self._head = self._text = False
        self._a: dict[str, str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "head":
            self._head = True
        elif tag == "link" and self._head and a.get("rel") == "alternate":
            self.alternates.append(a)
        elif tag == "p" and a.get("class") == "text":
            self._text = True
        elif self._text:
            self.in_text.append(tag)
        if tag == "a":
            self._a = {**a, "text": ""}
            self.links.append(self._a)

    def handle_endtag(self, tag):
        if tag == "head":
            self._head = False
        elif tag == "p":
            self._text = False
        elif tag == "a":
            self._a = None

    def handle_data(self, data):
        if self._a is not None:
            self._a["text"] += data

    def text_links(self, kind: str) -> list[tuple[str, str]]:
        return [(a["text"], a["href"]) for a in self.links if a.get("class") == kind]


async def page(client, path: str) -> Parsed:
    r = await client.get(path)
    assert r.status == 200, path
    assert r.headers["Content-Security-Policy"] == PAGE_CSP, path
    return Parsed(await r.text())


FEEDS = [("/", "/feeds/timeline.atom"), ("/u/alice", "/feeds/users/alice.atom"),
         ("/u/alice/f1", "/feeds/users/alice.atom"), ("/tags/atom", "/feeds/tags/atom.atom"),
         ("/tags/Atom", "/feeds/tags/Atom.atom"), ("/search?q=feed+me", "/feeds/search.atom?q=feed+me")]


@pytest.mark.parametrize(("path", "feed"), FEEDS)
async def test_every_page_with_a_feed_announces_it(http, path, feed):
    service, client = http
    await service.publish(ALICE, ref("alice"), "f1", draft("feed me #atom"))
    parsed = await page(client, path)
    [link] = parsed.alternates
    assert (link["type"], link["href"]) == ("application/atom+xml", feed) and link["title"], path
    assert feed in [a["href"] for a in parsed.links], "the feed is linked visibly on the page too"
    r = await client.get(link["href"])
    assert r.status == 200 and r.content_type == "application/atom+xml"
    atom = feedparser.parse(await r.read())
    assert not atom.bozo and [e.title for e in atom.entries] == ["feed me #atom"]


async def test_a_page_without_a_feed_announces_none(http):
    service, client = http
    assert (await page(client, "/search")).alternates == []
    r = await client.get("/u/nobody")
    assert r.status == 404 and "alternate" not in await r.text()


async def test_tag_page_lists_the_tagged_posts_paged_like_search(http):
    service, client = http
    await service.publish(ALICE, ref("alice"), "t1", draft("first #Garden"))
    await service.publish(ALICE, ref("alice"), "t2", draft("second #garden and #other"))
    await service.publish(ALICE, ref("alice"), "t3", draft("third, garden without a tag"))
    await service.publish(ALICE, ref("alice"), "t4", draft("café #café"))
    text = await (await client.get("/tags/garden")).text()
    assert "first" in text and "second" in text and "third" not in text and "2 public post(s)" in text
    one = await page(client, "/tags/garden?limit=1")
    assert ("More posts", "/tags/garden?cursor=1") in [(a["text"], a["href"]) for a in one.links]
    rest = await (await client.get("/tags/garden?limit=1&cursor=1")).text()
    assert "first" in rest and "second" not in rest and "More posts" not in rest
    assert (await page(client, "/tags/caf%C3%A9")).text_links("tag") == [("#café", "/tags/caf%C3%A9")]
    for bad in ("/tags/a%20b", "/tags/%3Cb%3E", "/tags/" + "x" * 65, "/feeds/tags/a%20b.atom"):
        r = await client.get(bad)
        assert r.status == 400 and "<b>" not in await r.text(), bad


async def test_tag_pages_count_against_the_search_limit(stack):
    core, uow, clock = stack

    async def stats():
        return {}

    api = HttpApi(core.pubsub, core.social, core.search, "http://blog.example.org", stats, searches_per_minute=1)
    async with TestClient(TestServer(api.app)) as client:
        assert (await client.get("/tags/garden")).status == 200
        assert (await client.get("/tags/garden")).status == 429


async def test_hashtags_and_mentions_are_links(http):
    service, client = http
    text = "hi @bob@example.org, @bob@blog.example.org and @zed@beta.test: #Tag (#日本語) mail x@y.org #"
    await service.publish(ALICE, ref("alice"), "m1", draft(text))
    for path in ("/", "/u/alice", "/u/alice/m1", "/tags/tag"):
        parsed = await page(client, path)
        assert parsed.text_links("mention") == [
            ("@bob@example.org", "/u/bob"), ("@bob@blog.example.org", "/u/bob"),
            ("@zed@beta.test", "xmpp:zed@beta.test")], path
        assert parsed.text_links("tag") == [("#Tag", "/tags/tag"), ("#日本語", "/tags/%E6%97%A5%E6%9C%AC%E8%AA%9E")]
        assert parsed.in_text == ["a"] * 5, "only our links inside a post's text"
    assert "日本語" in await (await client.get("/tags/%E6%97%A5%E6%9C%AC%E8%AA%9E")).text()


async def test_hostile_text_stays_text_in_links(http):
    service, client = http
    hostile = ("#<b>x</b> #\"onmouseover=alert(1) @\"><script>@evil.org @a@b.c\"onclick=x "
               "<a href=javascript:alert(1)>#click</a> '#q' " + "#long" * 400)
    await service.publish(ALICE, ref("alice"), "h1", draft(escape(hostile)))
    for path in ("/", "/u/alice", "/u/alice/h1"):
        r = await client.get(path)
        raw = await r.text()
        parsed = Parsed(raw)
        assert "<script>" not in raw and "<b>x" not in raw and "<a href=javascript" not in raw, path
        assert set(parsed.in_text) == {"a"}, path
        for _, href in parsed.text_links("tag") + parsed.text_links("mention"):
            assert href.startswith(("/tags/", "/u/", "xmpp:")) and '"' not in href and "<" not in href, href
        assert ("#click", "/tags/click") in parsed.text_links("tag")
        assert ("@a@b.c", "xmpp:a@b.c") in parsed.text_links("mention")


async def test_profile_shows_the_follow_address_and_its_qr_code(http):
    service, client = http
    await service.publish(ALICE, ref("alice"), "q1", draft("hello"))
    r = await client.get("/u/alice")
    raw = await r.text()
    assert "data:" not in r.headers["Content-Security-Policy"], "an inline <svg> needs no data: images"
    parsed = Parsed(raw)
    hrefs = [a["href"] for a in parsed.links]
    assert "xmpp:alice@blog.example.org?roster" in hrefs
    assert "xmpp:blog.example.org?message;body=follow%20alice@example.org" in hrefs
    assert str(qr_svg("xmpp:alice@blog.example.org?roster")) in raw, "the QR code of the roster link, inline"
    assert raw.count("<svg") == 1 and "<img" not in raw


async def test_empty_timeline_says_how_to_post(http):
    service, client = http
    text = await (await client.get("/")).text()
    assert "Nothing has been posted here yet" in text
    assert 'href="xmpp:blog.example.org?message"' in text, "a link that opens a chat with the bot"
    assert "<code>post</code>" in text and "<code>help</code>" in text and "example.org" in text
    await service.publish(ALICE, ref("alice"), "e1", draft("now there is one"))
    text = await (await client.get("/")).text()
    assert "now there is one" in text and "Nothing has been posted" not in text
    assert "Nothing has been posted" not in await (await client.get("/?cursor=e1")).text()

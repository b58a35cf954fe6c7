# SPDX-License-Identifier: AGPL-3.0-or-later
"""aiohttp routes: JSON API, Atom feeds (RFC 4287) and HTML pages (adapter layer).

Every read goes through the core as an anonymous actor, so the visibility rule
decides at serve time and protected posts never appear (T6). Posts are shown
as from the author the core attributes them to; only local posts link to a
page here. Everything users wrote is escaped: HTML by the templates'
autoescaping (http/pages.py), Atom and JSON by their serialisers (T11); Atom
feeds carry only sanitised markup and are served sandboxed
(Content-Security-Policy, nosniff). Every page with a feed announces it
(`<link rel="alternate">`). Numbers in queries are
ASCII digits, bounded. Searches are limited per client address.
Cursor paging: `cursor` is the id of the last item of the previous page (XEP-0059
`after`), or an offset for search results (at most MAX_OFFSET).
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from ..core import errors
from ..core.jid import parse as parse_jid
from ..core.model import NS_MICROBLOG, Actor, FoundPost, Item, Node, NodeRef, PageRequest
from ..core.pubsub import PubsubService
from ..core.network import NetworkView, Trend, matching
from ..core.search import MAX_OFFSET, SearchService, parse_query
from ..core.social import SocialService
from ..core.text import hashtags, normal
from ..core.uri import xmpp_uri
from ..protocol import NS_ATOM, NS_XMPPBLOG
from ..pubsub.sanitize import sanitize_entry
from ..pubsub.xep_0277 import entry_of, serialise, summary, title_and_text
from ..spamguard.buckets import TokenBuckets
from .errors import public_text, status_of
from .links import person_href
from .openapi import OPENAPI
from .pages import Pages, qr_svg
from .snapshot import Snapshot
from .stream import HEARTBEAT_SECONDS, PAGE as STREAM_PAGE, REREAD, StreamHub, StreamLimits, cursor_of, position_of

log = logging.getLogger(__name__)

ANON = Actor.ANONYMOUS
A = f"{{{NS_ATOM}}}"
PAGE = 20
_NUMBER = re.compile(r"[0-9]{1,7}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: feeds may carry (sanitised) XHTML from users: never let a browser run anything in them
FEED_HEADERS = {"Content-Security-Policy": "default-src 'none'; sandbox", "X-Content-Type-Options": "nosniff"}
#: the trends and the directory are computed at most this often (they read a day of posts)
NETWORK_SNAPSHOT_SECONDS = 30.0
#: stream events kept made (about the hub's ring)
EVENTS_KEPT = 4000
#: the directory's users, at most (filtered and paged from that list)
DIRECTORY_MAX = 100_000
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src https: http:; form-action 'self'"


def number(raw: str, what: str, low: int, high: int) -> int:
    """An ASCII decimal query parameter within [low, high]. Raises BadRequest otherwise."""
    if not _NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise errors.BadRequest(f"{what} must be a number from {low} to {high}")
    return int(raw)


def client_of(remote: str | None) -> str:
    """Whom a request counts against: its IPv4 address, or its IPv6 /64 (one host usually
    holds a whole /64, and would otherwise have 2^64 addresses to rotate through)."""
    try:
        address = ipaddress.ip_address((remote or "").split("%", 1)[0])
    except ValueError:
        return remote or "?"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class HttpApi:
    def __init__(self, pubsub: PubsubService, social: SocialService, search: SearchService, base_url: str,
                 stats: Callable[[], Awaitable[dict[str, Any]]], searches_per_minute: int = 30,
                 directory: Callable[[], Awaitable[list[tuple[Node, int]]]] | None = None,
                 stream: StreamHub | None = None, stream_limits: StreamLimits = StreamLimits(2000, 50),
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, network: NetworkView | None = None,
                 sources: Callable[[], dict[str, str]] = dict) -> None:
        """`stats`, `directory`: the statistics and the user list (if not `social.directory`
        itself); the composition root passes snapshots of both (http/snapshot.py). `stream`:
        the hub of /api/stream (none: no stream)."""
        self.hub = stream
        #: the latest events made, by position (the ring's posts, sent to every client)
        self._events: collections.OrderedDict[int, tuple[Item, bytes]] = collections.OrderedDict()
        self.network = network
        #: an aggregator's sources and their state (federation/aggregator.py)
        self._sources = sources
        if network is not None:
            self._trends = Snapshot(network.trends, NETWORK_SNAPSHOT_SECONDS, time.monotonic)
            self._listing = Snapshot(lambda: network.directory(limit=DIRECTORY_MAX), NETWORK_SNAPSHOT_SECONDS,
                                     time.monotonic)
        self._stream_limits = stream_limits
        self.heartbeat_seconds = heartbeat_seconds
        self.blogs = pubsub
        self.social = social
        self.search = search
        self.base = base_url.rstrip("/")
        self._stats = stats
        self._directory = directory or social.directory
        self._searches = TokenBuckets(searches_per_minute, time.monotonic, max_keys=10_000)
        self.pages = Pages(pubsub.addr)
        self.app = web.Application(middlewares=[self._errors])
        r = self.app.router
        r.add_get("/", self.page_timeline)
        r.add_get("/u/{user}", self.page_user)
        r.add_get("/u/{user}/{item}", self.page_post)
        r.add_get("/search", self.page_search)
        r.add_get("/tags/{tag}", self.page_tag)
        r.add_get("/api/openapi.json", self.api_openapi)
        r.add_get("/api/users", self.api_users)
        r.add_get("/api/users/{user}/posts", self.api_user_posts)
        r.add_get("/api/users/{user}/posts/{item}", self.api_post)
        r.add_get("/api/timeline", self.api_timeline)
        r.add_get("/api/search", self.api_search)
        r.add_get("/api/stats", self.api_stats)
        if stream is not None:
            r.add_get("/api/stream", self.api_stream)
        if network is not None:
            r.add_get("/api/network/timeline", self.api_network_timeline)
            r.add_get("/network", self.page_network)
            r.add_get("/feeds/network.atom", self.feed_network)
            r.add_get("/api/trends", self.api_trends)
            r.add_get("/api/directory", self.api_directory)
            r.add_get("/api/suggestions", self.api_suggestions)
        r.add_get("/feeds/timeline.atom", self.feed_timeline)
        r.add_get("/feeds/users/{user}.atom", self.feed_user)
        r.add_get("/feeds/tags/{tag}.atom", self.feed_tag)
        r.add_get("/feeds/search.atom", self.feed_search)

    # ------------------------------------------------------------ plumbing

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except errors.BlogError as exc:
            status = status_of(exc)
            log.info("http %s %s -> %d (%s)", request.method, request.path_qs, status, type(exc).__name__)
            if request.path.startswith("/api/"):
                response = web.json_response({"error": public_text(exc)}, status=status)
            else:
                response = self._html("error.html", "Not available", status=status, message=public_text(exc))
        if request.path.startswith(("/api/", "/feeds/")):
            response.headers["Access-Control-Allow-Origin"] = "*"  # read-only and public: browser apps welcome
        if request.path.startswith("/feeds/"):
            response.headers.update(FEED_HEADERS)
        else:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            if response.content_type == "text/html":
                response.headers["Content-Security-Policy"] = PAGE_CSP
        return response

    def _ref(self, user: str) -> NodeRef:
        try:
            blog = self.blogs.addr.blog_of(f"{user}@{self.blogs.addr.users_domain}")
        except errors.InvalidJid:
            blog = None
        if blog is None or "@" in user or "/" in user:
            raise errors.NodeNotFound("no such user")
        return NodeRef(blog, NS_MICROBLOG)

    @staticmethod
    def _limit(request: web.Request) -> int:
        return number(request.query.get("limit", str(PAGE)), "limit", 1, 100)

    def _search_allowed(self, request: web.Request) -> None:
        if not self._searches.take(client_of(request.remote)):
            log.info("http search refused: client=%s (over the per-client limit)", request.remote)
            raise web.HTTPTooManyRequests(text="too many searches from your address; wait a minute",
                                          headers={"Retry-After": "60"})

    async def _page(self, ref: NodeRef, request: web.Request) -> tuple[list[Item], str | None]:
        limit = self._limit(request)
        cursor = request.query.get("cursor") or None
        page = await self.blogs.get_items(ANON, ref, page=PageRequest(max=limit, after=cursor))
        items = list(page.items)
        more = items and (len(items) == limit if page.count is None
                          else (page.first_index or 0) + len(items) < page.count)
        return items, (items[-1].item_id if more else None)

    async def _search(self, request: web.Request, query: str) -> tuple[list[FoundPost], int, int | None]:
        """(posts, total, next offset or None)."""
        limit = self._limit(request)
        offset = number(request.query.get("cursor", "0"), "cursor", 0, MAX_OFFSET)
        self._search_allowed(request)
        found = await self.search.search(ANON, query, limit, offset, request.query.get("order") == "relevance")
        nxt = offset + limit
        return found.posts, found.total, nxt if nxt < found.total and nxt <= MAX_OFFSET else None

    # ------------------------------------------------------------ JSON API

    async def api_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    async def api_users(self, request: web.Request) -> web.Response:
        blogs = await self._directory()
        return web.json_response({"users": [
            {"jid": n.owner, "blog": n.ref.service, "posts": count, "title": n.config.title,
             "url": f"{self.base}/u/{quote(n.owner.split('@')[0])}"} for n, count in blogs]})

    def _post_url(self, ref: NodeRef, item: Item) -> str | None:
        """The page of a post of this server (comments and remote posts have none)."""
        local = self.blogs.addr.owner_of(ref.service)
        if local is None or ref.is_comments:
            return None
        return f"{self.base}/u/{quote(local.split('@')[0])}/{quote(item.item_id, safe='')}"

    def _post_json(self, ref: NodeRef, item: Item) -> dict[str, Any]:
        entry = entry_of(item.payload)
        title, text = title_and_text(entry) if entry is not None else (None, "")
        return {"id": item.item_id, "author": item.publisher, "title": title, "text": text,
                "published": item.published.isoformat(), "updated": item.updated.isoformat(),
                "xmpp_uri": xmpp_uri(ref.service, ref.node, item.item_id), "url": self._post_url(ref, item),
                "tags": [c.get("term", "") for c in entry.findall(A + "category")] if entry is not None else []}

    async def api_user_posts(self, request: web.Request) -> web.Response:
        ref = self._ref(request.match_info["user"])
        items, cursor = await self._page(ref, request)
        return web.json_response({"posts": [self._post_json(ref, i) for i in items], "next_cursor": cursor})

    async def api_post(self, request: web.Request) -> web.Response:
        ref = self._ref(request.match_info["user"])
        item_id = request.match_info["item"]
        page = await self.blogs.get_items(ANON, ref, [item_id])
        post = self._post_json(ref, page.items[0])
        comments = await self.blogs.get_items(ANON, ref.comments(item_id), page=PageRequest(max=100))
        post["replies"] = [self._post_json(ref.comments(item_id), c) for c in reversed(comments.items)]
        return web.json_response(post)

    async def _timeline(self, request: web.Request) -> tuple[list[FoundPost], str | None]:
        items, cursor = await self._page(self.blogs.timeline_ref, request)
        return await self.blogs.originals(items), cursor

    async def api_timeline(self, request: web.Request) -> web.Response:
        posts, cursor = await self._timeline(request)
        return web.json_response({"posts": [self._post_json(p.ref, p.item) for p in posts], "next_cursor": cursor})

    async def api_search(self, request: web.Request) -> web.Response:
        found, total, nxt = await self._search(request, request.query.get("q", ""))
        return web.json_response({"total": total, "posts": [self._post_json(p.ref, p.item) for p in found],
                                  "next_cursor": str(nxt) if nxt is not None else None})

    async def api_stats(self, request: web.Request) -> web.Response:
        return web.json_response(await self._stats())

    # ------------------------------------------------------------ the network-wide view

    def network_changed(self) -> None:
        """A consent, an access model or a post changed: trends and the directory are computed
        again at the next request (not up to NETWORK_SNAPSHOT_SECONDS later)."""
        if self.network is not None:
            self._trends.expire()
            self._listing.expire()

    async def _network_page(self, request: web.Request) -> tuple[list[tuple[int, FoundPost]], str | None]:
        assert self.network is not None
        raw = request.query.get("cursor")
        posts, nxt = await self.network.timeline(position_of(raw) if raw else None, self._limit(request))
        return posts, (cursor_of(nxt) if nxt is not None else None)

    async def api_network_timeline(self, request: web.Request) -> web.Response:
        posts, nxt = await self._network_page(request)
        out = []
        for _, p in posts:
            data = self._post_json(p.ref, p.item)
            data["source"] = p.ref.service
            out.append(data)
        return web.json_response({"posts": out, "next_cursor": nxt})

    async def feed_network(self, request: web.Request) -> web.Response:
        posts, _ = await self._network_page(request)
        return self._feed(f"Network timeline seen from {self.blogs.addr.service_jid}", "/feeds/network.atom",
                          [(p.ref, p.item) for _, p in posts])

    async def page_network(self, request: web.Request) -> web.Response:
        posts, nxt = await self._network_page(request)
        _, day = await self._trends.get()
        return self._html("network.html", f"Network timeline — {self.blogs.addr.service_jid}",
                          ("Network timeline", "/feeds/network.atom"),
                          posts=[self._view(p.ref, p.item) for _, p in posts], trends=[t.tag for t in day[:10]],
                          next_href=f"/network?cursor={quote(nxt, safe='')}" if nxt else None)

    async def api_trends(self, request: web.Request) -> web.Response:
        hour, day = await self._trends.get()

        def listed(trends: list[Trend]) -> list[dict[str, Any]]:
            return [{"tag": t.tag, "authors": t.now, "authors_before": t.before, "score": t.score} for t in trends]
        return web.json_response({"hour": listed(hour), "day": listed(day)})

    async def api_directory(self, request: web.Request) -> web.Response:
        listed = matching(await self._listing.get(), request.query.get("q", "")[:100])
        limit = self._limit(request)
        offset = number(request.query.get("cursor", "0"), "cursor", 0, MAX_OFFSET)
        page = listed[offset:offset + limit]
        return web.json_response({
            "users": [{"jid": e.jid, "server": e.server, "posts": e.posts, "local": e.local} for e in page],
            "sources": [{"source": s, "state": state} for s, state in sorted(self._sources().items())],
            "next_cursor": str(offset + limit) if offset + limit < len(listed) else None})

    async def api_suggestions(self, request: web.Request) -> web.Response:
        assert self.network is not None
        who = parse_jid(request.query.get("for", "").strip()).bare  # InvalidJid: 400
        # Anyone may ask for anyone: what that user follows and tracks is theirs, not public (a
        # user's own `suggest`, by chat, uses it), so here only public figures count
        found = await self.network.suggestions(who, self._limit(request), from_follows=False)
        return web.json_response({"for": who, "suggestions": [
            {"jid": s.jid, "server": s.server, "why": s.why} for s in found]})

    def _stream_filter(self, request: web.Request) -> Callable[[FoundPost], bool]:
        """The query of `author`, `tag` and `q` (the search language), as a test on a post."""
        q = request.query
        terms = [q.get("q", "").strip()]
        if q.get("tag", "").strip():
            terms.append("#" + q["tag"].strip().lstrip("#"))
        if q.get("author", "").strip():
            terms.append("from:" + parse_jid(q["author"].strip()).bare)  # InvalidJid: 400
        text = " ".join(t for t in terms if t)
        if not text:
            return lambda post: True
        query = parse_query(text)
        return lambda post: query.matches(summary(post.item.payload), post.item.publisher)

    def _event(self, position: int, post: FoundPost) -> bytes:
        """The event of a post, made once for every client (the same bytes for all of them)."""
        made = self._events.get(position)
        if made is not None and made[0] is post.item:
            return made[1]
        data = self._post_json(post.ref, post.item)
        data["source"] = post.ref.service
        data["entry"] = post.item.payload
        event = (f"event: post\nid: {cursor_of(position)}\ndata: "
                 f"{json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n").encode()
        self._events[position] = (post.item, event)
        if len(self._events) > EVENTS_KEPT:
            self._events.popitem(last=False)
        return event

    async def api_stream(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events of the posts that may leave this server (http/stream.py): from the
        database while resuming, then from the hub's ring."""
        assert self.hub is not None
        hub = self.hub
        wanted = self._stream_filter(request)  # a bad query is a 400 before the stream opens
        resume = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
        position = position_of(resume) if resume else None
        client = client_of(request.remote)
        if not self._stream_limits.take(client):
            raise web.HTTPTooManyRequests(text="too many open streams; close one or wait",
                                          headers={"Retry-After": "30", "Access-Control-Allow-Origin": "*"})
        joined = False
        #: positions sent lately: a post read from the database while resuming, or read again by
        #: the hub after a late commit, is not sent twice
        sent: collections.deque[int] = collections.deque(maxlen=2 * REREAD + STREAM_PAGE)

        async def emit(at: int, post: FoundPost) -> None:
            if at not in sent:
                sent.append(at)
                if wanted(post):
                    await response.write(self._event(at, post))

        try:
            seq = await hub.join()
            joined = True
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no", "Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"})
            await response.prepare(request)
            await response.write(b": xmppblog stream\n\n")
            log.info("stream opened: client=%s from=%s", client, cursor_of(position) if position is not None else "now")
            while True:
                try:
                    while position is not None:  # resuming, or fallen behind the ring: the database
                        page = await hub.stream.after(position, STREAM_PAGE)
                        for at, post in page.posts:
                            await emit(at, post)
                        position = None if not page.full else page.position
                except errors.BlogError:
                    # the headers are sent: end the stream; the client resumes with Last-Event-ID
                    log.warning("stream: could not read posts; closing client=%s", client)
                    return response
                entries = hub.since(seq)
                if entries is None:  # too slow for the ring: catch up from the last post sent
                    position = max(0, max(sent, default=hub.position) - REREAD)
                    seq = hub.seq
                    continue
                for entry_seq, at, post in entries:
                    seq = entry_seq
                    await emit(at, post)
                if not entries and not await hub.wait(seq, self.heartbeat_seconds):
                    await response.write(b": keepalive\n\n")
        except ConnectionResetError:  # the client went away while we wrote: nothing to tell it
            log.info("stream closed: client=%s", client)
            return response
        except asyncio.CancelledError:
            log.info("stream closed: client=%s", client)
            raise
        finally:
            if joined:
                hub.leave()
            self._stream_limits.give_back(client)

    # ------------------------------------------------------------ Atom feeds

    def _feed(self, title: str, self_url: str, posts: list[tuple[NodeRef, Item]]) -> web.Response:
        feed = ET.Element(A + "feed")
        ET.SubElement(feed, A + "title").text = title
        ET.SubElement(feed, A + "id").text = f"{self.base}{self_url}"
        ET.SubElement(feed, A + "updated").text = _iso(max((i.updated for _, i in posts),
                                                            default=datetime.now(UTC)))
        ET.SubElement(feed, A + "link", {"rel": "self", "href": f"{self.base}{self_url}"})
        ET.SubElement(feed, A + "generator").text = "xmppblog"
        for ref, item in posts:
            entry = entry_of(item.payload)
            if entry is None:
                continue
            sanitize_entry(entry)  # stored entries were sanitised; older ones, and remote ones, again
            _one_content(entry)
            for old in entry.findall(A + "author"):
                entry.remove(old)
            author = ET.SubElement(entry, A + "author")  # whom the post is attributed to, nothing else
            ET.SubElement(author, A + "name").text = item.publisher
            ET.SubElement(author, A + "uri").text = f"xmpp:{item.publisher}"
            for sig in entry.findall(f"{{{NS_XMPPBLOG}}}signature"):
                entry.remove(sig)
            url = self._post_url(ref, item)
            if url:
                ET.SubElement(entry, A + "link", {"rel": "alternate", "type": "text/html", "href": url})
            feed.append(entry)
        return web.Response(text="<?xml version='1.0' encoding='utf-8'?>\n" + serialise(feed, NS_ATOM),
                            content_type="application/atom+xml", charset="utf-8")

    async def feed_timeline(self, request: web.Request) -> web.Response:
        posts, _ = await self._timeline(request)
        return self._feed(f"Public timeline of {self.blogs.addr.service_jid}", "/feeds/timeline.atom",
                          [(p.ref, p.item) for p in posts])

    async def feed_user(self, request: web.Request) -> web.Response:
        user = request.match_info["user"]
        ref = self._ref(user)
        items, _ = await self._page(ref, request)
        return self._feed(f"{user}@{self.blogs.addr.users_domain}", f"/feeds/users/{quote(user)}.atom",
                          [(ref, i) for i in items])

    async def feed_tag(self, request: web.Request) -> web.Response:
        tag = _tag(request.match_info["tag"])
        found, _, _ = await self._search(request, f"#{tag}")
        return self._feed(f"#{tag}", f"/feeds/tags/{quote(tag)}.atom", [(p.ref, p.item) for p in found])

    async def feed_search(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "")
        found, _, _ = await self._search(request, q)
        return self._feed(f"Search: {q}", "/feeds/search.atom?" + urlencode({"q": q}),
                          [(p.ref, p.item) for p in found])

    # ------------------------------------------------------------ HTML pages

    def _view(self, ref: NodeRef, item: Item) -> dict[str, Any]:
        """What a template shows of a post the core let us read (plain data, escaped by the template)."""
        p = self._post_json(ref, item)
        return {"title": p["title"], "text": p["text"], "author": p["author"],
                "author_href": person_href(p["author"], self.blogs.addr),
                "when": item.published.strftime("%Y-%m-%d %H:%M"), "url": p["url"], "xmpp_uri": p["xmpp_uri"]}

    def _html(self, template: str, title: str, feed: tuple[str, str] | None = None,
              status: int = 200, **context: Any) -> web.Response:
        """A rendered page; `feed` is the (title, root-relative URL) of the Atom feed it announces."""
        text = self.pages.render(template, title=title, feed=dict(zip(("title", "href"), feed, strict=True))
                                 if feed else None, **context)
        return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")

    async def page_timeline(self, request: web.Request) -> web.Response:
        posts, cursor = await self._timeline(request)
        service = self.blogs.addr.service_jid
        return self._html("timeline.html", f"Public timeline — {service}",
                          (f"Public timeline of {service}", "/feeds/timeline.atom"),
                          posts=[self._view(p.ref, p.item) for p in posts], paged="cursor" in request.query,
                          next_href=f"/?cursor={quote(cursor, safe='')}" if cursor else None,
                          chat_href=f"xmpp:{quote(service, safe='@')}?message")

    async def page_user(self, request: web.Request) -> web.Response:
        user = request.match_info["user"]
        ref = self._ref(user)
        items, cursor = await self._page(ref, request)
        jid = f"{user}@{self.blogs.addr.users_domain}"
        # RFC 5122 / XEP-0147: ?roster adds the blog as a contact (= follow); ?message opens a chat with the bot
        roster = f"xmpp:{quote(ref.service, safe='@')}?roster"
        follow = f"xmpp:{quote(self.blogs.addr.service_jid, safe='@')}?message;body={quote('follow ' + jid, safe='@')}"
        return self._html("user.html", jid, (jid, f"/feeds/users/{quote(user, safe='')}.atom"),
                          posts=[self._view(ref, i) for i in items], jid=jid, blog=ref.service,
                          roster_href=roster, follow_href=follow, qr=qr_svg(roster),
                          next_href=f"?cursor={quote(cursor, safe='')}" if cursor else None)

    async def page_post(self, request: web.Request) -> web.Response:
        user = request.match_info["user"]
        ref = self._ref(user)
        item_id = request.match_info["item"]
        item = (await self.blogs.get_items(ANON, ref, [item_id])).items[0]
        page = await self.blogs.get_items(ANON, ref.comments(item_id), page=PageRequest(max=100))
        replies = [self._view(ref.comments(item_id), c) for c in reversed(page.items)]
        jid = f"{user}@{self.blogs.addr.users_domain}"
        post = self._view(ref, item)
        title = f"{post['title']} — {user}" if post["title"] else f"Post by {user}"
        return self._html("post.html", title, (jid, f"/feeds/users/{quote(user, safe='')}.atom"),
                          post=post, replies=replies)

    async def page_search(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "")
        if not q.strip():
            return self._html("search.html", "Search", q="")
        found, total, nxt = await self._search(request, q)
        return self._html("search.html", f"Search: {q}", (f"Search: {q}", "/feeds/search.atom?" + urlencode({"q": q})),
                          q=q, total=total, posts=[self._view(p.ref, p.item) for p in found],
                          next_href="/search?" + urlencode({"q": q, "cursor": nxt}) if nxt is not None else None)

    async def page_tag(self, request: web.Request) -> web.Response:
        tag = _tag(request.match_info["tag"])
        found, total, nxt = await self._search(request, f"#{tag}")
        path = quote(tag, safe="")
        return self._html("tag.html", f"#{tag}", (f"#{tag} on {self.blogs.addr.service_jid}",
                                                   f"/feeds/tags/{path}.atom"),
                          tag=tag, total=total, posts=[self._view(p.ref, p.item) for p in found],
                          next_href=f"/tags/{path}?cursor={nxt}" if nxt is not None else None)


def _tag(raw: str) -> str:
    """A hashtag from a URL (without '#'), as the core reads tags. Raises BadRequest otherwise.

    Only a whole tag is searched as one: "a b" would be the tag #a and the word b.
    """
    if hashtags(f"#{raw}") != [normal(raw)]:
        raise errors.BadRequest("not a hashtag")
    return raw


def _one_content(entry: ET.Element) -> None:
    """At most one <content/> per entry (RFC 4287 §4.1.1; Libervia sends text and xhtml): the
    xhtml one (sanitised), else html, else text."""
    contents = entry.findall(A + "content")
    if len(contents) < 2:
        return
    rank = {"xhtml": 0, "html": 1, "text": 2}
    keep = min(contents, key=lambda c: rank.get(c.get("type", "text"), 3))
    for c in contents:
        if c is not keep:
            entry.remove(c)


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


async def start(api: HttpApi, listen: str, shared: bool = False) -> web.AppRunner:
    """Serve `api` on `listen` (HOST:PORT). `shared`: the workers of a cluster on one machine
    all listen on the same port (SO_REUSEPORT), and the kernel spreads the connections."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(api.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, int(port), reuse_port=shared or None).start()
    log.info("http listening on %s (%s)", listen, api.base)
    return runner


# SPDX-License-Identifier: AGPL-3.0-or-later
"""The privacy matrix: what each viewer gets ⊆ what they may see (both backends).

Viewers: owner, approved follower, pending, revoked (the owner removed them),
two followers from before the access-model change (one by roster, one by
XEP-0060, while the blog was open, never approved): the change keeps those the
new model still admits (subscribers under `authorize`, contacts under
`presence`) and revokes the others, and both lose everything under
`whitelist`; outcast (banned), local stranger, remote stranger, anonymous HTTP. Paths: notifications (events and chat), items, item by id,
comments, the public timeline node, the firehose node and the stream of posts
(the owner made their posts discoverable), disco info and items, presence (probe
answers and the announcements after a reconnect), chat (personal timeline,
search, whois), reposts (a repost would make the post public), error texts (a
reader who may not see the blog must not tell an existing post from an absent
one), and the HTTP API, feeds and pages. Every access model, reached by an
access-model change from `open` (where the followers start) through
`authorize` (where the follower states are made), evaluated again after the
approved follower is revoked every way there is. Each cell asserts nothing
secret reached a viewer who may not see it; the count of leaking cells is
reported (must be 0).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from aiohttp.test_utils import TestClient, TestServer

from xmppblog.core import errors
from xmppblog.core.discovery import Discovery
from xmppblog.core.model import NS_MICROBLOG, AccessModel, Actor, Delivery, NodeRef
from xmppblog.core.pubsub import Limits
from xmppblog.http.server import HttpApi
from xmppblog.im.text import draft_from_text, short_id
from xmppblog.pubsub.xep_0277 import parse_entry
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory

from ..conftest import FIGURES
from ..support.core import Everyone, test_core

OWNER = "alice@example.org"
ROSTER_BEFORE, PUBSUB_BEFORE = "roster follower before the change", "pubsub follower before the change"
JIDS = {"owner": OWNER, "approved": "bob@example.org", "pending": "carol@example.org",
        "revoked": "dave@example.org", ROSTER_BEFORE: "gina@example.org", PUBSUB_BEFORE: "hank@example.org",
        "outcast": "oscar@example.org", "local stranger": "erin@example.org", "remote stranger": "zed@other.org"}
VIEWERS = [*JIDS, "anonymous"]
BLOG = NodeRef("alice@blog.example.org", NS_MICROBLOG)
HTTP_PATHS = ["/api/users/alice/posts", "/api/users/alice/posts/{id}", "/feeds/users/alice.atom", "/u/alice",
              "/u/alice/{id}", "/api/timeline", "/api/search?q={word}", "/feeds/timeline.atom",
              "/feeds/search.atom?q={word}", "/", "/search?q={word}", "/api/users", "/feeds/tags/{word}.atom"]
LEAKS: list[str] = []
CELLS = [0]


def draft(text: str):  # type: ignore[no-untyped-def]
    return parse_entry(ET.fromstring(f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>{text} "
                                     f"#{text} body{text}</title></entry></item>"), 65536)


def may_see(model: AccessModel, viewer: str, revoked_follower: bool) -> bool:
    if viewer == "owner":
        return True
    if viewer == "outcast":
        return False  # banned: not even an open blog
    if model is AccessModel.OPEN:
        return True
    if viewer == ROSTER_BEFORE:  # a subscriber under authorize, a contact under presence
        return model in (AccessModel.AUTHORIZE, AccessModel.PRESENCE)
    if viewer == PUBSUB_BEFORE:  # a subscriber under authorize, nothing else
        return model is AccessModel.AUTHORIZE
    return viewer == "approved" and not revoked_follower


@pytest.fixture
async def world(db_url):
    from xmppblog.storage import migrate

    from ..support.core import FakeClock
    await migrate.upgrade(db_url)
    engine = create_engine(db_url)
    clock = FakeClock()
    uow = uow_factory(sessionmaker(engine), clock)
    core = test_core(uow, engine, db_url, clock, Limits(max_payload_bytes=4096), online=Everyone(),
                     discovery=Discovery(default=True))  # the owner consents: the firehose carries what it may

    async def stats():  # type: ignore[no-untyped-def]
        return {}

    client = TestClient(TestServer(HttpApi(core.pubsub, core.social, core.search, "http://blog.example.org",
                                           stats, searches_per_minute=0).app))
    await client.start_server()
    yield core, uow, clock, client
    await client.close()
    core.search.close()
    await engine.dispose()


async def _recipients(uow, clock) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """Who was sent what since the last call: recipient -> [payloads and status lines]."""
    async with uow() as u:
        rows = await u.outbox.due(clock.now(), 10_000)
        bulk = await u.outbox.due_bulk(clock.now(), 10_000)
        await u.outbox.done([r.row_id for r in rows])
        await u.outbox.bulk_handed([b.event_id for b in bulk])
        await u.commit()
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r.recipient.split("/")[0], []).append(r.event.payload or "")
    for b in bulk:
        for j in b.event.recipients:
            out.setdefault(j.split("/")[0], []).append(b.event.payload or "")
    return out


async def _error_of(coro) -> tuple[str, str] | None:  # type: ignore[no-untyped-def]
    try:
        await coro
    except errors.BlogError as exc:
        return type(exc).__name__, exc.text
    return None


async def _seen_by(world, viewer: str, item_id: str, word: str, sent: dict[str, list[str]],  # type: ignore[no-untyped-def]
                   audience: list[tuple[str, str, str]]) -> dict[str, bool]:
    """path -> did `viewer` get the secret post (or its text) by that path."""
    core, uow, clock, client = world
    service = core.pubsub
    got: dict[str, bool] = {}
    if viewer == "anonymous":
        mark = "body" + word  # in the post only: pages echo the query, never this
        for path in HTTP_PATHS:
            r = await client.get(path.format(id=item_id, word=word))
            got[f"http {path}"] = mark in await r.text()
        got["stream of posts"] = any(mark in p.item.payload for _, p in (await core.stream.after(0, 10_000)).posts)
        return got
    jid = JIDS[viewer]
    actor = Actor(jid)
    got["notifications and chat"] = any(word in p for p in sent.get(jid, []))

    async def read(ref: NodeRef, ids: tuple[str, ...] = ()) -> bool:
        try:
            page = await service.get_items(actor, ref, ids)
        except errors.BlogError:
            return False
        return any(word in i.payload for i in page.items)

    got["items"] = await read(BLOG)
    got["item by id"] = await read(BLOG, (item_id,))
    got["comments"] = await read(BLOG.comments(item_id))
    got["attachments"] = await read(BLOG.attachments(item_id))
    got["public timeline node"] = await read(service.timeline_ref)
    got["firehose node"] = await read(service.nodes.firehose_ref)
    try:
        await service.visible_node(actor, BLOG)
        got["disco info"] = True
    except errors.BlogError:
        got["disco info"] = False
    got["disco items"] = any(n.ref == BLOG for n in await service.visible_nodes(actor, BLOG.service))
    got["presence probe"] = word in (await core.roster.probe_answer(BLOG.service, jid) or "")
    got["presence after reconnect"] = any(c == jid and word in s for _, c, s in audience)
    # an existence oracle: for someone who may not read, a real post and an absent one answer alike
    real = await _error_of(service.get_items(actor, BLOG.comments(item_id)))
    absent = await _error_of(service.get_items(actor, BLOG.comments("absent-" + item_id)))
    by_id = await _error_of(service.get_items(actor, BLOG, (item_id,)))
    by_absent_id = await _error_of(service.get_items(actor, BLOG, ("absent-" + item_id,)))
    got["error texts"] = real != absent or by_id != by_absent_id
    if viewer != "remote stranger":  # chat commands are for local users
        found = await core.search.search(actor, word)
        got["search"] = any(word in f.item.payload for f in found.posts)
        got["personal timeline"] = any(word in p.item.payload for p in await core.social.timeline(actor, 50))
        whois = await core.social.whois(actor, OWNER)
        got["whois"] = whois.latest is not None and word in whois.latest.payload
    return got


async def _reposted_by(core, viewer: str, item_id: str) -> bool:  # type: ignore[no-untyped-def]
    """Could `viewer` repost the post (making it public on their own blog)?"""
    try:
        await core.posting.repost(Actor(JIDS[viewer]), short_id(item_id),
                                  lambda text, **kw: draft_from_text(text, 4096, **kw))
    except errors.BlogError:
        return False
    return True


async def _evaluate(world, model: AccessModel, phase: str, revoked_follower: bool) -> None:  # type: ignore[no-untyped-def]
    core, uow, clock, _ = world
    service = core.pubsub
    word = f"secret{model.value}{phase.replace(' ', '')}"
    owner = Actor(OWNER)
    await _recipients(uow, clock)  # what earlier steps planned is not this post's
    item_id = await service.publish(owner, BLOG, None, draft(word))
    await service.publish(owner, BLOG.comments(item_id), None, draft(word + " comment"))
    await service.attach(owner, BLOG.attachments(item_id), None,
                         f"<attachments xmlns='urn:xmpp:pubsub-attachments:1'><reactions><reaction>{word}"
                         "</reaction></reactions></attachments>")
    sent = await _recipients(uow, clock)
    audience = await core.roster.presence_audience()
    seen = {}
    for viewer in VIEWERS:
        seen[viewer] = await _seen_by(world, viewer, item_id, word, sent, audience)
    # last: a repost that succeeds is public, and would show up on the paths above
    for viewer in VIEWERS:
        if viewer not in ("anonymous", "remote stranger", "owner"):
            seen[viewer]["repost"] = await _reposted_by(core, viewer, item_id)
    for viewer in VIEWERS:
        allowed = may_see(model, viewer, revoked_follower)
        for path, got in seen[viewer].items():
            CELLS[0] += 1
            if path == "error texts" and allowed:
                continue  # a reader who may see the blog may know which posts exist
            if got and not allowed:
                LEAKS.append(f"{model.value}/{phase}: {viewer} got the post by {path}")
    # and those who may see it do get it: the matrix is not vacuous
    assert seen["owner"]["items"] and seen["owner"]["comments"] and seen["owner"]["item by id"]
    assert seen["owner"]["attachments"]
    if not revoked_follower:
        assert seen["approved"]["items"] and seen["approved"]["notifications and chat"], seen["approved"]
        assert seen["approved"]["presence probe"], "an approved contact sees the status line"
    if model is AccessModel.OPEN:
        assert seen["anonymous"]["http /api/users/alice/posts"] and seen["local stranger"]["search"]
        assert seen[ROSTER_BEFORE]["presence probe"] and seen[PUBSUB_BEFORE]["notifications and chat"]


@pytest.mark.parametrize("model", list(AccessModel))
async def test_privacy_matrix(world, model):
    core, uow, clock, _ = world
    service, roster, social = core.pubsub, core.roster, core.social
    owner = Actor(OWNER)
    await service.publish(owner, BLOG, None, draft("hello"))
    # while the blog is open: followers by roster (presence granted at once)
    for who in (ROSTER_BEFORE, "outcast"):
        await roster.contact_subscribe(BLOG.service, JIDS[who])
        await roster.contact_subscribed(BLOG.service, JIDS[who], True)
    await service.subscribe(Actor(JIDS[PUBSUB_BEFORE]), BLOG, JIDS[PUBSUB_BEFORE])
    await service.configure(owner, BLOG, {"access_model": AccessModel.AUTHORIZE})
    await roster.contact_subscribe(BLOG.service, JIDS["approved"])  # asks by roster
    await service.subscribe(Actor(JIDS["approved"]), BLOG, JIDS["approved"], Delivery.EVENT)
    for who in ("pending", "revoked"):
        await service.subscribe(Actor(JIDS[who]), BLOG, JIDS[who], Delivery.IM)
    assert await social.answer(owner, JIDS["approved"], True)
    await service.authorize(owner, BLOG, JIDS["revoked"], True)
    await service.set_subscriptions(owner, BLOG, [(JIDS["revoked"], "none")])
    await service.set_affiliations(owner, BLOG, [(JIDS["approved"], "member"), (JIDS["outcast"], "outcast")])
    await service.configure(owner, BLOG, {"access_model": model})  # the access-model change
    await _evaluate(world, model, "after change", False)
    # revoke the approved follower every way there is
    await service.set_subscriptions(owner, BLOG, [(JIDS["approved"], "none")])
    await service.set_affiliations(owner, BLOG, [(JIDS["approved"], "none")])
    await roster.contact_unsubscribe(BLOG.service, JIDS["approved"])
    await _evaluate(world, model, "after revoke", True)
    assert not LEAKS, "\n".join(LEAKS)


def test_privacy_matrix_report():
    """Runs after the matrix (file order): reports the cells and the leaks."""
    if CELLS[0]:
        FIGURES.append(("privacy matrix (both backends)", {"cells": CELLS[0], "leaking": len(LEAKS)}))
    assert not LEAKS

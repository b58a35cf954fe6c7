# SPDX-License-Identifier: AGPL-3.0-or-later
"""Issue #8's privacy matrix: what each viewer gets ⊆ what they may see (both backends).

Viewers: owner, approved follower, pending, revoked, local stranger, remote stranger,
anonymous HTTP. Paths: notifications (events and chat), items, item by id, disco
info and items, comments, search, the public timeline node, the personal timeline,
and the HTTP API, feeds and pages. Every access model, reached by an access-model
change from `authorize` (where the follower states are made), evaluated again after
the approved follower is revoked. Each cell asserts nothing secret reached a viewer
who may not see it; the count of leaking cells is reported (must be 0).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from aiohttp.test_utils import TestClient, TestServer

from xmppblog.core import errors
from xmppblog.core.addressing import Addressing
from xmppblog.core.model import NS_MICROBLOG, AccessModel, Actor, Delivery, NodeRef
from xmppblog.core.service import BlogService, Limits
from xmppblog.core.social import SocialService
from xmppblog.http.server import HttpApi
from xmppblog.pubsub.xep_0277 import AtomCodec, parse_entry

from ..conftest import FIGURES

OWNER, FOLLOWER, PENDING, REVOKED = "alice", "bob", "carol", "dave"
STRANGER, REMOTE = "erin", "zed@other.org"
VIEWERS = ["owner", "approved", "pending", "revoked", "local stranger", "remote stranger", "anonymous"]
JIDS = {"owner": f"{OWNER}@example.org", "approved": f"{FOLLOWER}@example.org",
        "pending": f"{PENDING}@example.org", "revoked": f"{REVOKED}@example.org",
        "local stranger": f"{STRANGER}@example.org", "remote stranger": REMOTE}
BLOG = NodeRef(f"{OWNER}@blog.example.org", NS_MICROBLOG)
HTTP_PATHS = ["/api/users/alice/posts", "/api/users/alice/posts/{id}", "/feeds/users/alice.atom", "/u/alice",
              "/u/alice/{id}", "/api/timeline", "/api/search?q={word}", "/feeds/timeline.atom",
              "/feeds/search.atom?q={word}", "/", "/search?q={word}", "/api/users", "/feeds/tags/{word}.atom"]
LEAKS: list[str] = []
CELLS = [0]


class Everyone:
    def is_online(self, bare: str) -> bool:
        return True  # chat deliveries are planned for every IM follower


def draft(text: str):  # type: ignore[no-untyped-def]
    return parse_entry(ET.fromstring(f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>{text} "
                                     f"#{text} body{text}</title></entry></item>"), 65536)


def may_see(model: AccessModel, viewer: str, revoked_follower: bool) -> bool:
    if viewer == "owner" or model is AccessModel.OPEN:
        return True
    return viewer == "approved" and not revoked_follower


@pytest.fixture
async def world(backend):
    _, uow, clock = backend
    service = BlogService(Addressing("blog.example.org", "example.org"), uow, AtomCodec(), clock,
                          Limits(max_payload_bytes=4096), online=Everyone())
    social = SocialService(service, uow)

    async def stats():  # type: ignore[no-untyped-def]
        return {}

    client = TestClient(TestServer(HttpApi(service, social, "http://blog.example.org", stats).app))
    await client.start_server()
    yield service, social, uow, client
    await client.close()


async def _seen_by(service, social, uow, client, viewer: str, item_id: str, word: str,  # type: ignore[no-untyped-def]
                   recipients: set[str]) -> dict[str, bool]:
    """path -> did `viewer` get the secret post (or its text) by that path."""
    got: dict[str, bool] = {}
    if viewer == "anonymous":
        mark = "body" + word  # in the post only: pages echo the query, never this
        for path in HTTP_PATHS:
            r = await client.get(path.format(id=item_id, word=word))
            got[f"http {path}"] = mark in await r.text()
        return got
    jid = JIDS[viewer]
    actor = Actor(jid)
    got["notifications and chat"] = any(r.split("/")[0] == jid for r in recipients)

    async def read(ref: NodeRef, ids: tuple[str, ...] = ()) -> bool:
        try:
            page = await service.get_items(actor, ref, ids)
        except errors.BlogError:
            return False
        return any(word in i.payload for i in page.items)

    got["items"] = await read(BLOG)
    got["item by id"] = await read(BLOG, (item_id,))
    got["comments"] = await read(BLOG.comments(item_id))
    got["public timeline node"] = await read(service.timeline_ref)
    try:
        await service.visible_node(actor, BLOG)
        got["disco info"] = True
    except errors.BlogError:
        got["disco info"] = False
    got["disco items"] = any(n.ref == BLOG for n in await service.visible_nodes(actor, BLOG.service))
    if viewer != "remote stranger":  # chat commands are for local users
        found, _ = await social.search(actor, word)
        got["search"] = any(word in f.item.payload for f in found)
        got["personal timeline"] = any(word in p.item.payload for p in await social.timeline(actor, 50))
    return got


async def _recipients(uow, clock) -> set[str]:  # type: ignore[no-untyped-def]
    async with uow() as u:
        rows = await u.outbox.due(clock.now(), 10_000)
        bulk = await u.outbox.due_bulk(clock.now(), 10_000)
        await u.outbox.done([r.row_id for r in rows])
        await u.outbox.bulk_handed([b.event_id for b in bulk])
        await u.commit()
    return {r.recipient for r in rows} | {j for b in bulk for j in b.event.recipients}


async def _evaluate(world, model: AccessModel, phase: str, revoked_follower: bool, clock) -> None:  # type: ignore[no-untyped-def]
    service, social, uow, client = world
    word = f"secret{model.value}{phase.replace(' ', '')}"
    owner = Actor(JIDS["owner"])
    await _recipients(uow, clock)  # what earlier steps planned is not this post's
    item_id = await service.publish(owner, BLOG, None, draft(word))
    await service.publish(owner, BLOG.comments(item_id), None, draft(word + " comment"))
    recipients = await _recipients(uow, clock)
    seen = {}
    for viewer in VIEWERS:
        allowed = may_see(model, viewer, revoked_follower)
        seen[viewer] = await _seen_by(service, social, uow, client, viewer, item_id, word, recipients)
        for path, got in seen[viewer].items():
            CELLS[0] += 1
            if got and not allowed:
                LEAKS.append(f"{model.value}/{phase}: {viewer} got the post by {path}")
    # and those who may see it do get it: the matrix is not vacuous
    assert seen["owner"]["items"] and seen["owner"]["comments"] and seen["owner"]["item by id"]
    if not revoked_follower:
        assert seen["approved"]["items"] and seen["approved"]["notifications and chat"], seen["approved"]
    if model is AccessModel.OPEN:
        assert seen["anonymous"]["http /api/users/alice/posts"] and seen["local stranger"]["search"]


@pytest.mark.parametrize("model", list(AccessModel))
async def test_privacy_matrix(world, backend, model):
    service, social, uow, _ = world
    clock = backend[2]
    owner = Actor(JIDS["owner"])
    await service.publish(owner, BLOG, None, draft("hello"))
    await service.configure(owner, BLOG, {"access_model": AccessModel.AUTHORIZE})
    for who, delivery in ((FOLLOWER, Delivery.EVENT), (PENDING, Delivery.IM), (REVOKED, Delivery.IM)):
        jid = f"{who}@example.org"
        await service.subscribe(Actor(jid), BLOG, jid, delivery)
    await service.authorize(owner, BLOG, JIDS["approved"], True)
    await service.authorize(owner, BLOG, JIDS["revoked"], True)
    await service.set_subscriptions(owner, BLOG, [(JIDS["revoked"], "none")])
    await service.set_affiliations(owner, BLOG, [(JIDS["approved"], "member")])
    await service.set_presence_subscription(BLOG.service, JIDS["approved"], True)
    await service.configure(owner, BLOG, {"access_model": model})  # the access-model change
    await _evaluate(world, model, "after change", False, clock)
    # revoke the approved follower every way there is
    await service.set_subscriptions(owner, BLOG, [(JIDS["approved"], "none")])
    await service.set_affiliations(owner, BLOG, [(JIDS["approved"], "none")])
    await service.set_presence_subscription(BLOG.service, JIDS["approved"], False)
    await _evaluate(world, model, "after revoke", True, clock)
    assert not LEAKS, "\n".join(LEAKS)


def test_privacy_matrix_report():
    """Runs after the matrix (file order): reports the cells and the leaks."""
    if CELLS[0]:
        FIGURES.append(("privacy matrix (both backends)", {"cells": CELLS[0], "leaking": len(LEAKS)}))
    assert not LEAKS

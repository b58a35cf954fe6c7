# SPDX-License-Identifier: AGPL-3.0-or-later
"""The service's storage contract, on SQLite and on PostgreSQL (same tests)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from xmppblog.core import errors as E
from xmppblog.core.model import NS_MICROBLOG, AccessModel, Actor, EventKind, NodeRef, PageRequest, SubState
from xmppblog.pubsub.xep_0277 import parse_entry

ALICE, BOB, CAROL = Actor("alice@example.org"), Actor("bob@example.org"), Actor("carol@example.org")
REF = NodeRef("alice@blog.example.org", NS_MICROBLOG)


def draft(title: str):
    item = ET.fromstring(f"<item><entry xmlns='http://www.w3.org/2005/Atom'><title>{title}</title></entry></item>")
    return parse_entry(item, 65536)


async def outbox(uow, clock):
    async with uow() as u:
        return list(await u.outbox.due(clock.now(), 1000))


async def test_publish_store_and_fan_out_plan(backend):
    service, uow, clock = backend
    await service.subscribe(BOB, REF, "bob@example.org/phone")
    await service.subscribe(CAROL, REF, "carol@example.org")
    item_id = await service.publish(ALICE, REF, None, draft("hello"))
    assert item_id == "id1"
    page = await service.get_items(BOB, REF)
    assert [i.item_id for i in page.items] == ["id1"] and page.count == 1
    assert page.items[0].published.tzinfo is not None
    due = await outbox(uow, clock)
    assert sorted(d.recipient for d in due) == ["bob@example.org/phone", "carol@example.org"]
    assert {d.event_id for d in due} == {due[0].event_id}, "one event row, one row per recipient"
    assert due[0].event.kind is EventKind.ITEM_PUBLISHED and "hello" in due[0].event.payload
    async with uow() as u:
        await u.outbox.done([d.row_id for d in due])
        await u.commit()
    assert await outbox(uow, clock) == []
    async with uow() as u:
        assert await u.outbox.pending_count() == 0


async def test_republish_keeps_published_and_moves_to_top(backend):
    service, uow, clock = backend
    await service.publish(ALICE, REF, "a", draft("1"))
    clock.advance(60)
    await service.publish(ALICE, REF, "b", draft("2"))
    clock.advance(60)
    await service.publish(ALICE, REF, "a", draft("1 edited"))
    page = await service.get_items(ALICE, REF)
    assert [i.item_id for i in page.items] == ["a", "b"]
    a = page.items[0]
    assert a.updated > a.published and "1 edited" in a.payload


async def test_trim_paging_and_item_lookup(backend):
    service, uow, clock = backend
    for i in range(7):
        await service.publish(ALICE, REF, f"p{i}", draft(str(i)))
    all_ids = [f"p{i}" for i in range(6, 1, -1)]  # max_items_per_node = 5 keeps p6..p2
    page = await service.get_items(BOB, REF, page=PageRequest(max=10))
    assert [i.item_id for i in page.items] == all_ids[:3]  # max_page_items = 3
    assert page.count == 5 and page.first_index == 0
    page = await service.get_items(BOB, REF, page=PageRequest(max=2, after="p5"))
    assert [i.item_id for i in page.items] == ["p4", "p3"] and page.first_index == 2
    page = await service.get_items(BOB, REF, page=PageRequest(max=2, before=""))
    assert [i.item_id for i in page.items] == ["p3", "p2"] and page.first_index == 3
    page = await service.get_items(BOB, REF, page=PageRequest(max=2, index=1))
    assert [i.item_id for i in page.items] == ["p5", "p4"] and page.first_index == 1
    page = await service.get_items(BOB, REF, ["p2", "p0", "p6"])
    assert sorted(i.item_id for i in page.items) == ["p2", "p6"]
    with pytest.raises(E.ItemNotFound):
        await service.get_items(BOB, REF, ["p0"])
    with pytest.raises(E.ItemNotFound):
        await service.get_items(BOB, REF, page=PageRequest(max=2, after="p0"))


async def test_sql_metacharacters_are_just_data(backend):
    service, uow, clock = backend
    nasty = "x'; DROP TABLE items; --"
    await service.publish(ALICE, REF, nasty, draft("sql"))
    assert [i.item_id for i in (await service.get_items(BOB, REF, [nasty])).items] == [nasty]
    with pytest.raises(E.NodeNotFound):
        await service.get_items(BOB, NodeRef(REF.service, "' OR 1=1 --"))


async def test_authorize_flow_and_subscription_listing(backend):
    service, uow, clock = backend
    await service.publish(ALICE, REF, None, draft("x"))
    await service.configure(ALICE, REF, {"access_model": AccessModel.AUTHORIZE})
    sub = await service.subscribe(BOB, REF, "bob@example.org")
    assert sub.state is SubState.PENDING
    assert await service.pending(ALICE, REF.service) == {NS_MICROBLOG: ["bob@example.org"]}
    with pytest.raises(E.PendingSubscription):
        await service.get_items(BOB, REF)
    assert await service.authorize(ALICE, REF, "bob@example.org", True)
    assert not await service.authorize(ALICE, REF, "bob@example.org", True)
    assert len((await service.get_items(BOB, REF)).items) == 1
    subs = await service.subscriptions_of(BOB, REF.service)
    assert [(s.ref.node, s.state) for s in subs] == [(NS_MICROBLOG, SubState.SUBSCRIBED)]
    kinds = sorted(d.event.kind for d in await outbox(uow, clock))
    assert kinds == [EventKind.SUBSCRIPTION_CHANGED, EventKind.SUBSCRIPTION_PENDING]


async def test_affiliations_and_outcast(backend):
    service, uow, clock = backend
    await service.publish(ALICE, REF, None, draft("x"))
    await service.subscribe(BOB, REF, "bob@example.org")
    await service.set_affiliations(ALICE, REF, [("Bob@Example.org", "outcast"), ("carol@example.org", "publisher")])
    affs = await service.get_affiliations(ALICE, REF)
    assert affs == {"alice@example.org": "owner", "bob@example.org": "outcast", "carol@example.org": "publisher"}
    assert await service.get_subscriptions(ALICE, REF) == []
    with pytest.raises(E.Forbidden):
        await service.get_items(BOB, REF)
    await service.publish(CAROL, REF, "by-carol", draft("guest post"))
    with pytest.raises(E.Forbidden):
        await service.retract(BOB, REF, ["by-carol"], None)
    await service.retract(CAROL, REF, ["by-carol"], None)
    with pytest.raises(E.BadRequest):
        await service.set_affiliations(ALICE, REF, [("x@example.org", "emperor")])


async def test_delete_node_and_comments(backend):
    service, uow, clock = backend
    post = await service.publish(ALICE, REF, None, draft("post"))
    comments = REF.comments(post)
    assert (await service.get_items(CAROL, comments)).items == (), "a post's comments node exists, empty"
    await service.publish(BOB, comments, None, draft("comment"))
    assert len((await service.get_items(CAROL, comments)).items) == 1
    await service.purge(ALICE, REF)
    with pytest.raises(E.NodeNotFound):
        await service.get_items(CAROL, comments)
    await service.delete_node(ALICE, REF)
    with pytest.raises(E.NodeNotFound):
        await service.get_items(ALICE, REF)


async def test_presence_access_means_contacts_the_owner_approved(stack):
    core, uow, clock = stack
    service = core.pubsub
    await service.publish(ALICE, REF, None, draft("x"))
    await service.configure(ALICE, REF, {"access_model": AccessModel.PRESENCE})
    with pytest.raises(E.PresenceSubscriptionRequired):
        await service.get_items(BOB, REF)
    await core.roster.contact_subscribe(REF.service, "bob@example.org/laptop")
    with pytest.raises(E.PresenceSubscriptionRequired):
        await service.get_items(BOB, REF)  # asking is not being approved
    assert await core.social.answer(ALICE, "bob@example.org", True)
    assert len((await service.get_items(BOB, REF)).items) == 1
    await core.roster.contact_unsubscribe(REF.service, "bob@example.org")
    assert await service.get_subscriptions(ALICE, REF) == []
    with pytest.raises(E.PresenceSubscriptionRequired):
        await service.get_items(BOB, REF)


async def test_a_generated_id_that_collides_never_overwrites_a_post(backend):
    """Generated ids skip the existence check; a collision (48 random bits) is a unique-key
    conflict, run again with a fresh id, instead of silently replacing the older post."""
    service, uow, clock = backend
    ids = iter(["dup", "dup", "fresh"])
    service._new_id = lambda: next(ids)  # the id source the composition root gives it
    assert await service.publish(ALICE, REF, None, draft("first")) == "dup"
    assert await service.publish(ALICE, REF, None, draft("second")) == "fresh"
    page = await service.get_items(BOB, REF)
    assert {i.item_id: ("first" in i.payload, "second" in i.payload) for i in page.items} == {
        "dup": (True, False), "fresh": (False, True)}

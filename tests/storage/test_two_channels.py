# SPDX-License-Identifier: AGPL-3.0-or-later
"""A chat (or roster) follow and a XEP-0060 subscription of the same person are two channels,
each honoured as asked and each ended on its own (issue #15)."""

from __future__ import annotations

import pytest

from xmppblog.core.model import NS_MICROBLOG, Delivery, EventKind, NodeRef

from ..support.core import Everyone, FakeClock, test_core
from .test_service_storage import ALICE, BOB, draft

REF = NodeRef("alice@blog.example.org", NS_MICROBLOG)


@pytest.fixture
async def online_core(db_url):
    from xmppblog.storage import migrate
    from xmppblog.storage.engine import create_engine, sessionmaker
    from xmppblog.storage.repos import uow_factory

    await migrate.upgrade(db_url)
    engine = create_engine(db_url)
    clock = FakeClock()
    uow = uow_factory(sessionmaker(engine), clock)
    core = test_core(uow, engine, db_url, clock, online=Everyone())
    yield core, uow, clock
    core.search.close()
    await engine.dispose()


async def copies_for(uow, clock, jid: str) -> list[EventKind]:
    """The kinds of notification planned for `jid` since the last call (they are then handed)."""
    async with uow() as u:
        bulk = await u.outbox.due_bulk(clock.now(), 100)
        rows = await u.outbox.due(clock.now(), 100)
        await u.outbox.bulk_handed([b.event_id for b in bulk])
        await u.outbox.done([r.row_id for r in rows])
        await u.commit()
    return sorted([b.event.kind for b in bulk if jid in b.event.recipients]
                  + [r.event.kind for r in rows if r.recipient == jid])


async def test_a_chat_follower_who_subscribes_with_xep_0060_gets_one_copy_per_channel(online_core):
    core, uow, clock = online_core
    await core.posting.post(ALICE, draft("hello"))
    await core.follows.follow(BOB, "alice@example.org")                       # chat follow
    sub = await core.pubsub.subscribe(BOB, REF, BOB.jid)                       # then his XEP-0277 client
    assert sub.delivery is Delivery.BOTH
    await copies_for(uow, clock, BOB.jid)
    await core.posting.post(ALICE, draft("to both channels"))
    assert await copies_for(uow, clock, BOB.jid) == [EventKind.IM_POST, EventKind.ITEM_PUBLISHED]

    await core.pubsub.unsubscribe(BOB, REF, BOB.jid)                           # XEP-0060 unsubscribe
    await core.posting.post(ALICE, draft("chat only now"))
    assert await copies_for(uow, clock, BOB.jid) == [EventKind.IM_POST], "the chat follow stays"

    await core.pubsub.subscribe(BOB, REF, BOB.jid)
    await core.follows.unfollow(BOB, "alice@example.org")                      # chat unfollow
    await copies_for(uow, clock, BOB.jid)
    await core.posting.post(ALICE, draft("events only now"))
    assert await copies_for(uow, clock, BOB.jid) == [EventKind.ITEM_PUBLISHED], "the XEP-0060 one stays"
    async with uow() as u:
        node = await u.nodes.get(REF)
        assert (await u.subs.get(node, BOB.jid)).delivery is Delivery.EVENT


async def test_either_order_and_a_second_ask_change_nothing_more(online_core):
    core, uow, clock = online_core
    await core.posting.post(ALICE, draft("hello"))
    await core.pubsub.subscribe(BOB, REF, BOB.jid)                             # XEP-0060 first
    assert (await core.pubsub.subscribe(BOB, REF, BOB.jid)).delivery is Delivery.EVENT
    await core.follows.follow(BOB, "alice@example.org")                       # then chat
    async with uow() as u:
        node = await u.nodes.get(REF)
        assert (await u.subs.get(node, BOB.jid)).delivery is Delivery.BOTH
    await copies_for(uow, clock, BOB.jid)
    await core.posting.post(ALICE, draft("once each"))
    assert await copies_for(uow, clock, BOB.jid) == [EventKind.IM_POST, EventKind.ITEM_PUBLISHED]
    # the owner removing him ends both
    await core.pubsub.set_subscriptions(ALICE, REF, [(BOB.jid, "none")])
    assert await copies_for(uow, clock, BOB.jid) == [EventKind.SUBSCRIPTION_CHANGED]  # told, XEP-0060 §8.8.4
    await core.posting.post(ALICE, draft("nothing"))
    assert await copies_for(uow, clock, BOB.jid) == []


def test_channel_arithmetic():
    assert Delivery.IM.plus(Delivery.EVENT) is Delivery.BOTH is Delivery.EVENT.plus(Delivery.IM)
    assert Delivery.IM.plus(Delivery.IM) is Delivery.IM
    assert Delivery.BOTH.minus(Delivery.EVENT) is Delivery.IM and Delivery.BOTH.minus(Delivery.IM) is Delivery.EVENT
    assert Delivery.IM.minus(Delivery.IM) is None and Delivery.BOTH.minus(Delivery.BOTH) is None
    assert Delivery.IM.minus(Delivery.EVENT) is None, "a single channel: the subscription ends"
    assert Delivery.BOTH.im and Delivery.BOTH.events and not Delivery.IM.events and not Delivery.EVENT.im

# SPDX-License-Identifier: AGPL-3.0-or-later
"""The bulk outbox: local recipients in the event row, remote ones tracked per row (both backends)."""

from __future__ import annotations

import pytest

from xmppblog.core.model import EventKind, OutboxEvent
from xmppblog.storage.engine import create_engine, sessionmaker
from xmppblog.storage.repos import uow_factory

from ..support.core import FakeClock


def _local(jid: str) -> bool:
    return jid.split("/", 1)[0].rpartition("@")[2] in ("example.org", "blog.example.org")


@pytest.fixture
async def uow(backend, db_url):
    """The backend fixture's factory tracks every recipient; this one takes the bulk path for ours."""
    engine = create_engine(db_url)
    yield uow_factory(sessionmaker(engine), FakeClock(), local=_local)
    await engine.dispose()


EVENT = OutboxEvent(EventKind.ITEM_PUBLISHED, "alice@blog.example.org", "urn:xmpp:microblog:0",
                    ("bob@example.org", "carol@example.org/phone", "blog.other.org", "dan@other.org"),
                    item_id="1", payload="<p xmlns='urn:x'/>", publisher="alice@example.org")


async def test_local_recipients_take_the_bulk_path_remote_ones_get_rows(uow):
    clock = FakeClock()
    async with uow() as u:
        event_id = await u.outbox.add(EVENT)
        assert await u.outbox.add(OutboxEvent(EventKind.NODE_PURGED, "x@blog.example.org", "n", ())) == 0
        await u.commit()
    async with uow() as u:
        bulk = await u.outbox.due_bulk(clock.now(), 10)
        assert [(b.event_id, b.event.recipients) for b in bulk] == [
            (event_id, ("bob@example.org", "carol@example.org/phone"))]
        assert bulk[0].event.payload == EVENT.payload and bulk[0].event.publisher == "alice@example.org"
        rows = await u.outbox.due(clock.now(), 10)
        assert sorted(r.recipient for r in rows) == ["blog.other.org", "dan@other.org"]
        assert await u.outbox.pending_count() == 4
        await u.outbox.bulk_left(event_id, ["carol@example.org/phone"])
        await u.commit()
    async with uow() as u:
        assert [b.event.recipients for b in await u.outbox.due_bulk(clock.now(), 10)] == [
            ("carol@example.org/phone",)]
        assert await u.outbox.pending_count() == 3
        await u.outbox.bulk_handed([event_id])
        await u.commit()
    async with uow() as u:
        assert await u.outbox.due_bulk(clock.now(), 10) == []
        # the event row stays while a tracked row still needs it, and goes with the last one
        rows = await u.outbox.due(clock.now(), 10)
        assert len(rows) == 2 and rows[0].event.item_id == "1"
        await u.outbox.done([r.row_id for r in rows])
        await u.commit()
    async with uow() as u:
        assert await u.outbox.pending_count() == 0
        assert await u.outbox.due(clock.now(), 10) == []


async def test_tracked_rows_done_first_leave_the_bulk_recipients_due(uow):
    clock = FakeClock()
    async with uow() as u:
        event_id = await u.outbox.add(EVENT)
        await u.commit()
    async with uow() as u:
        await u.outbox.done([r.row_id for r in await u.outbox.due(clock.now(), 10)])
        await u.commit()
    async with uow() as u:
        assert [b.event_id for b in await u.outbox.due_bulk(clock.now(), 10)] == [event_id]
        await u.outbox.bulk_left(event_id, [])
        await u.commit()
    async with uow() as u:
        assert await u.outbox.due_bulk(clock.now(), 10) == [] and await u.outbox.pending_count() == 0


async def test_a_cluster_worker_reads_only_its_own_shards(uow):
    """Shards 0 and 63 are the mask's edges (bit 63 is the sign bit of the bound integer)."""
    from xmppblog.core.shards import shard_of
    clock = FakeClock()
    senders: dict[int, str] = {}
    n = 0
    while not {0, 5, 63} <= senders.keys():
        sender = f"u{n}@blog.example.org"
        senders.setdefault(shard_of(sender), sender)
        n += 1
    async with uow() as u:
        for shard in (0, 5, 63):
            await u.outbox.add(OutboxEvent(EventKind.ITEM_PUBLISHED, senders[shard], "urn:xmpp:microblog:0",
                                           ("bob@example.org", "dan@other.org"), item_id=str(shard)))
        await u.commit()
    async with uow() as u:
        for held in ({0}, {63}, {0, 63}, {5, 63}, {1, 2}, set(range(64))):
            wanted = sorted({0, 5, 63} & held)
            bulk = await u.outbox.due_bulk(clock.now(), 10, frozenset(held))
            rows = await u.outbox.due(clock.now(), 10, frozenset(held))
            assert sorted(int(b.event.item_id) for b in bulk) == wanted, held
            assert sorted(int(r.event.item_id) for r in rows) == wanted, held
            assert await u.outbox.any_due(clock.now(), frozenset(held)) == bool(wanted), held

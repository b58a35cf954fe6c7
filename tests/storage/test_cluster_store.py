# SPDX-License-Identifier: AGPL-3.0-or-later
"""A cluster's heartbeats and leases on PostgreSQL (storage/cluster.ClusterStore; issue #16):
shards shared among the workers that can send, taken over from a dead one, one live process
per worker id, and a worker taken for dead while alive told so.

PostgreSQL only: a cluster runs on PostgreSQL (the statements use its `now()` and
`make_interval`)."""

from __future__ import annotations

import asyncio

import pytest

from xmppblog.storage.cluster import ClusterStore, WorkerIdInUse, live_workers

LEASE = 0.6


@pytest.fixture
def engine(cluster_engine):
    return cluster_engine


async def test_shards_are_shared_and_taken_over_from_a_dead_worker(engine):
    a, b = ClusterStore(engine, "a", LEASE), ClusterStore(engine, "b", LEASE)
    await a.setup()
    first = await a.heartbeat(True)
    assert first.fresh and first.live == 1 and first.held == frozenset()
    assert len(await a.acquire(64)) == 64
    assert await b.acquire(10) == [], "every shard is held"
    await b.heartbeat(True)
    await asyncio.sleep(LEASE + 0.2)  # a stops beating
    beat = await b.heartbeat(True)
    assert [w for w, _ in beat.buried] == ["a"] and beat.live == 1
    taken = await b.acquire(64)
    assert len(taken) == 64 and {was for _, was in taken} == {"a"}, "its expired leases, with who held them"


async def test_the_worker_that_forgets_a_dead_one_sends_its_last_moments_again_in_the_same_transaction(engine):
    """Bounces to a dead worker's slots were lost: what any worker sent to other servers from
    two leases before it was last seen is due again, decided with the burial itself (a crash
    between the two would lose them)."""
    from sqlalchemy import text

    a, b = ClusterStore(engine, "a", LEASE), ClusterStore(engine, "b", LEASE)
    await a.setup()
    async with engine.begin() as conn:
        event = (await conn.execute(text(
            "INSERT INTO outbox_events (kind, sender, node, created_at, shard) "
            "VALUES ('item', 'alice@blog.example.org', 'urn:xmpp:microblog:0', now(), 0) RETURNING id"))).scalar_one()
        rows = {}
        for name, sent in (("long before", "now() - interval '10 minutes'"), ("last moments", "now()"),
                           ("never sent", "NULL")):
            rows[name] = (await conn.execute(text(
                f"INSERT INTO outbox (event_id, recipient, attempts, next_at, sent_at) VALUES "
                f"(:e, 'bob@example.net', 0, now() + interval '1 hour', {sent}) RETURNING id"), {"e": event})
            ).scalar_one()
    await a.heartbeat(True)
    await b.heartbeat(True)
    await asyncio.sleep(LEASE + 0.2)  # a stops beating
    beat = await b.heartbeat(True)
    assert [w for w, _ in beat.buried] == ["a"] and beat.requeued == 1
    async with engine.connect() as conn:
        state = {r[0]: (r[1], r[2]) for r in await conn.execute(
            text("SELECT id, sent_at IS NULL, next_at <= now() FROM outbox"))}
    assert state[rows["last moments"]] == (True, True), "due again, now"
    assert state[rows["long before"]] == (False, False), "its bounce had come back long ago"
    assert state[rows["never sent"]] == (True, False)
    assert (await b.heartbeat(True)).requeued == 0, "only once"


async def test_one_live_process_per_worker_id(engine):
    first, second = ClusterStore(engine, "w", LEASE), ClusterStore(engine, "w", LEASE)
    await first.heartbeat(True)
    with pytest.raises(WorkerIdInUse):
        await second.heartbeat(True)
    await asyncio.sleep(LEASE + 0.2)  # the first died: its id is free again
    assert not (await second.heartbeat(True)).fresh, "the dead one's row, taken over"
    with pytest.raises(WorkerIdInUse):
        await first.heartbeat(True)


async def test_a_worker_taken_for_dead_while_alive_is_told_so(engine):
    slow, other = ClusterStore(engine, "slow", LEASE), ClusterStore(engine, "other", LEASE)
    assert (await slow.heartbeat(True)).fresh
    assert not (await slow.heartbeat(True)).fresh
    await asyncio.sleep(LEASE + 0.2)  # slow stalls; the other forgets it
    assert [w for w, _ in (await other.heartbeat(True)).buried] == ["slow"]
    assert (await slow.heartbeat(True)).fresh, "its row had to be inserted again"


async def test_a_process_outside_the_cluster_sees_its_workers(engine):
    """App.prepare refuses to run a process without [cluster] beside a cluster's live workers."""
    assert await live_workers(engine, LEASE) == 0
    await ClusterStore(engine, "w", LEASE).heartbeat(True)
    assert await live_workers(engine, LEASE) == 1
    await asyncio.sleep(LEASE + 0.2)
    assert await live_workers(engine, LEASE) == 0, "a dead worker does not count"

# SPDX-License-Identifier: AGPL-3.0-or-later
"""The shared levels of spamguard's per-key limits in a cluster (storage/cluster.SpamUsage; issue #16).

PostgreSQL only: a cluster runs on PostgreSQL, and the statement uses its `unnest`,
`make_interval` and `now()`. On SQLite the table exists (migration 0014) and stays empty.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text

from xmppblog.storage.cluster import SpamUsage
from xmppblog.storage.engine import create_engine


@pytest.fixture
def engine(cluster_engine):
    return cluster_engine


async def test_charges_add_up_and_are_read_back(engine):
    usage = SpamUsage(engine)
    assert await usage.charge({}, []) == {}
    first = await usage.charge({"subscribes:jid:eve@spam.example": 6.0, "subscribes:domain:spam.example": 0.6},
                               ["publishes:local:alice@example.org"])
    assert first["subscribes:jid:eve@spam.example"] == pytest.approx(6.0, abs=0.5)
    assert first["subscribes:domain:spam.example"] == pytest.approx(0.6, abs=0.5)
    assert first["publishes:local:alice@example.org"] == 0.0, "a key nobody charged has no level"
    second = await usage.charge({"subscribes:jid:eve@spam.example": 3.0}, ["subscribes:domain:spam.example"])
    assert second["subscribes:jid:eve@spam.example"] == pytest.approx(9.0, abs=0.5), "added to what is there"
    assert second["subscribes:domain:spam.example"] == pytest.approx(0.6, abs=0.5), "watched, not charged"
    assert set(second) == {"subscribes:jid:eve@spam.example", "subscribes:domain:spam.example"}


async def test_a_drained_key_starts_again_from_now_and_is_expired(engine):
    usage = SpamUsage(engine)
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO spam_usage (key, drained_at) VALUES "
                                "('searches:jid:old@peer.example', now() - interval '5 minutes'), "
                                "('searches:jid:busy@peer.example', now() + interval '30 seconds')"))
    levels = await usage.charge({"searches:jid:old@peer.example": 2.0}, ["searches:jid:busy@peer.example"])
    assert levels["searches:jid:old@peer.example"] == pytest.approx(2.0, abs=0.5), "no credit for idle minutes"
    assert levels["searches:jid:busy@peer.example"] == pytest.approx(30.0, abs=1.0)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE spam_usage SET drained_at = now() - interval '1 second' "
                                "WHERE key = 'searches:jid:old@peer.example'"))
    assert await usage.expire() == 1
    assert (await usage.charge({}, ["searches:jid:old@peer.example"]))["searches:jid:old@peer.example"] == 0.0
    assert (await usage.charge({}, ["searches:jid:busy@peer.example"]))["searches:jid:busy@peer.example"] > 25


async def test_workers_charging_the_same_keys_at_once_all_count(db_url, engine):
    """Several workers' flushes at the same moment, on their own connections: every charge
    lands (the rows are locked in one order, so no flush fails on a deadlock)."""
    engines = [create_engine(db_url) for _ in range(4)]
    keys = [f"subscribes:jid:u{i}@spam.example" for i in range(20)] + ["subscribes:domain:spam.example"]
    try:
        await asyncio.gather(*(SpamUsage(e).charge({k: 1.0 for k in (keys if w % 2 else keys[::-1])}, [])
                               for _ in range(5) for w, e in enumerate(engines)))
    finally:
        for e in engines:
            await e.dispose()
    levels = await SpamUsage(engine).charge({}, keys)
    assert all(level == pytest.approx(20.0, abs=2.0) for level in levels.values()), levels


async def test_two_workers_share_a_limit_through_their_heartbeats(engine):
    """The wiring of app.py: each worker's Membership flushes its guard's shared levels after
    every heartbeat, with the live workers it counted."""
    from xmppblog.cluster.membership import Membership
    from xmppblog.spamguard.guard import Guard, Limits
    from xmppblog.spamguard.shared import SharedLimits
    from xmppblog.storage.cluster import ClusterStore

    async def consent(origin, node):
        return False

    usage = SpamUsage(engine)
    members, guards = [], []
    for name in ("w1", "w2"):
        shared = SharedLimits(usage, time.monotonic)
        members.append(Membership(ClusterStore(engine, name, 1.0), 0.1, 1.0,
                                  on_beat=lambda s=shared, i=len(members): s.flush(members[i].live)))
        guards.append(Guard(consent, {"example.org"}, Limits(subscribes_per_minute=4), shared=shared))
    for m in members:
        await m.join()
    beats = [asyncio.create_task(m.run()) for m in members]
    try:
        await asyncio.sleep(0.5)
        assert [g.shared.workers for g in guards] == [2, 2]
        eve = "eve@spam.example/x"
        assert [guards[0].gate("iq", eve, "subscribe").accepted for _ in range(3)] == [True, True, False]
        assert [guards[1].gate("iq", eve, "subscribe").accepted for _ in range(3)] == [True, True, False]
        await asyncio.sleep(0.5)
        level = (await usage.charge({}, ["subscribes:jid:eve@spam.example"]))["subscribes:jid:eve@spam.example"]
        assert level == pytest.approx(60.0, abs=2.0), "4 admitted, 15 s each"
        refused = [g.gate("iq", eve, "subscribe") for g in guards]
        assert [v.reason for v in refused] == ["rate-jid-subscribes"] * 2
    finally:
        for m in members:
            await m.leave()
        await asyncio.gather(*beats)

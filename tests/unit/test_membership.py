# SPDX-License-Identifier: AGPL-3.0-or-later
"""A cluster worker's shards (cluster/membership.py): fenced by time since the last renewal,
never given back in the middle of a batch, and the heartbeat never waits for one."""

from __future__ import annotations

import asyncio

from xmppblog.cluster.membership import Membership
from xmppblog.storage.cluster import Heartbeat


class Store:
    """ClusterStore's heartbeat and leases, in memory, for one worker."""

    me = "w1"

    def __init__(self) -> None:
        self.leases: set[int] = set()
        self.serving = 1
        self.released: list[list[int]] = []

    async def heartbeat(self, serving: bool) -> Heartbeat:
        return Heartbeat(self.serving, self.serving, frozenset(self.leases), ())

    async def acquire(self, n: int) -> list[tuple[int, str | None]]:
        free = [s for s in range(64) if s not in self.leases][:n]
        self.leases |= set(free)
        return [(s, None) for s in free]

    async def release(self, shards: list[int]) -> None:
        self.released.append(list(shards))
        self.leases -= set(shards)


def worker(store: Store, now: list[float]) -> Membership:
    return Membership(store, 2.0, 10.0, clock=lambda: now[0])  # type: ignore[arg-type]


async def test_no_shard_is_sent_from_once_the_leases_may_have_run_out():
    now = [100.0]
    m = worker(Store(), now)
    await m.beat()
    assert len(m.shards()) == 64 and m.runs("resync")
    now[0] += 7.9  # within lease - heartbeat of the renewal's start
    assert len(m.shards()) == 64
    now[0] += 0.2  # the next renewal is overdue: another worker may take them once they run out
    assert m.shards() == frozenset() and not m.runs("resync")
    await m.beat()
    assert len(m.shards()) == 64, "renewed"


async def test_shards_are_given_back_between_batches_and_the_heartbeat_never_waits_for_one():
    now = [100.0]
    store = Store()
    m = worker(store, now)
    await m.beat()
    store.serving = 2  # a second worker can send: this one's share is 32
    async with m.batch_lock:  # a batch is being sent
        await asyncio.wait_for(m.beat(), 1.0)
        assert store.released == [] and len(m.shards()) == 64, "not in the middle of a batch"
    await m.beat()
    assert store.released == [list(range(32, 64))] and len(m.shards()) == 32


async def test_a_worker_forgotten_by_the_others_shares_what_it_saw_again():
    now = [100.0]
    store = Store()
    told: list[str] = []
    m = Membership(store, 2.0, 10.0, clock=lambda: now[0],  # type: ignore[arg-type]
                   on_rejoined=lambda: told.append("again"))
    real = store.heartbeat

    async def fresh(serving: bool) -> Heartbeat:
        beat = await real(serving)
        return Heartbeat(beat.live, beat.serving, beat.held, beat.buried, True)

    store.heartbeat = fresh  # type: ignore[method-assign]
    await m.beat()
    assert told == [], "its first beat always inserts its row"
    await m.beat()
    assert told == ["again"]

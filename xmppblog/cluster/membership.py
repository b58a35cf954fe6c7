# SPDX-License-Identifier: AGPL-3.0-or-later
"""This worker's place in a cluster: its heartbeat, its share of the outbox, and taking
over from workers that died (cluster layer).

Every `heartbeat` seconds the worker says it is alive, and whether it can send
(a connection of it holds a slot), renews the leases of the outbox shards it
holds, and moves towards its fair share among the workers that can send
(core/shards.share):
it takes shards nobody live holds (free, released, or left by a dead worker whose
lease ran out) and gives back those above its share, between two outbox batches
(`batch_lock`), so a shard is never sent from by two workers on purpose. The one
worker that forgets a dead one also has the remote notifications of its last
moments sent again, in the same transaction (storage/cluster): bounces that came
back while its slots were empty were lost.
After every heartbeat that reached the database, and once more when it leaves, the
worker runs `on_beat` (the composition root shares spamguard's limits there).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from ..core.shards import SHARDS, job_shard, share
from ..storage.cluster import ClusterStore

log = logging.getLogger(__name__)


class Membership:
    """Held by the composition root; the outbox sender reads `held` and holds `batch_lock`."""

    def __init__(self, store: ClusterStore, heartbeat_seconds: float, lease_seconds: float,
                 on_change: Callable[[], None] = lambda: None,
                 on_buried: Callable[[], None] = lambda: None, serving: Callable[[], bool] = lambda: True,
                 clock: Callable[[], float] = time.monotonic, on_rejoined: Callable[[], None] = lambda: None,
                 on_beat: Callable[[], Awaitable[None]] | None = None) -> None:
        self.store = store
        #: whether this worker can send now (a connection of it holds a slot of the host's)
        self._serving = serving
        self.heartbeat_seconds = heartbeat_seconds
        self.lease_seconds = lease_seconds
        self._on_change = on_change
        self._on_buried = on_buried
        self._on_beat = on_beat
        #: the shards this worker sends from (empty until the first heartbeat)
        self.held: frozenset[int] = frozenset()
        self.live = 0
        #: held by the outbox sender while it sends a batch: shards are given back between batches
        self.batch_lock = asyncio.Lock()
        self._stopping = False
        #: when the last heartbeat that renewed the leases began (monotonic)
        self._renewed_at = float("-inf")
        self._served_at = float("-inf")
        self._clock = clock
        self._on_rejoined = on_rejoined
        self._beats = 0

    @property
    def me(self) -> str:
        return self.store.me

    def shards(self) -> frozenset[int]:
        """The shards to send from now: none once this worker's leases may have run out (its
        last renewal began more than `lease - heartbeat` seconds ago: the database, or this
        process, stalled), so it never sends from a shard another worker may have taken."""
        if self._clock() - self._renewed_at > self.lease_seconds - self.heartbeat_seconds:
            return frozenset()
        return self.held

    def runs(self, job: str) -> bool:
        """Whether this worker runs the once-per-cluster job `job` now."""
        return job_shard(job) in self.shards()

    async def join(self) -> bool:
        """Enter the cluster: True if no other worker is alive (a cold start)."""
        await self.store.setup()
        alone = await self.store.others_alive() == 0
        await self.beat()
        await self._after_beat()
        log.info("cluster: joined as %s (%s)", self.me,
                 "the first live worker" if alone else f"{self.live} workers alive")
        return alone

    async def run(self) -> None:
        """Beat until `leave`; a database outage is retried at the next beat."""
        while not self._stopping:
            await asyncio.sleep(self.heartbeat_seconds)
            if self._stopping:
                break
            try:
                await self.beat()
            except Exception:
                # Leases run out if this goes on: the others take the shards over, as they should.
                log.warning("cluster: heartbeat failed; retrying in %.0fs", self.heartbeat_seconds, exc_info=True)
            else:
                await self._after_beat()

    async def _after_beat(self) -> None:
        if self._on_beat is None:
            return
        try:
            await self._on_beat()
        except Exception:
            # never lets the heartbeat stop: the leases matter more
            log.warning("cluster: the work after a heartbeat failed", exc_info=True)

    async def beat(self) -> None:
        now = self._clock()
        if self._serving():
            self._served_at = now
        # a connection that drops and comes back within half a lease keeps the shards (giving
        # them back and taking them again would move every shard twice for a blip)
        serving = now - self._served_at < self.lease_seconds / 2
        started = self._clock()  # the leases renewed now run until at least started + lease
        beat = await self.store.heartbeat(serving)
        self._renewed_at = started
        if beat.fresh and self._beats:
            # the others took this worker for dead (it stalled, or the database was away) and
            # forgot what it saw online: share it again
            log.warning("cluster: this worker was taken for dead and forgotten; it rejoins")
            self._on_rejoined()
        self._beats += 1
        lost = self.held - beat.held
        if lost:
            log.warning("cluster: leases of %d shard(s) ran out before they were renewed (this worker "
                        "stalled?): %s", len(lost), sorted(lost))
        held = set(beat.held)
        self.live = beat.live
        for dead, seen in beat.buried:
            log.warning("cluster: worker %s is gone (last seen %s); its shards and slots are taken over",
                        dead, seen.isoformat(timespec="seconds"))
        if beat.requeued:
            log.info("cluster: %d notification(s) to other servers sent again (their bounces may have "
                     "reached a worker that is gone)", beat.requeued)
        if beat.buried:
            self._on_buried()
        # only workers that can send share the outbox; one whose connections hold no slot gives
        # its shards back (the host routes nothing to it, not even the answer to its delivery ping)
        target = share(beat.serving) if serving else 0
        if len(held) > target and not self.batch_lock.locked():
            # given back between two batches only; while one is being sent, at a later beat (the
            # heartbeat never waits for a batch: its leases would run out meanwhile)
            extra = sorted(held)[target:]
            async with self.batch_lock:
                await self.store.release(extra)
            held -= set(extra)
        elif len(held) < target:
            taken: dict[str, list[int]] = {}
            for shard, was in await self.store.acquire(target - len(held)):
                held.add(shard)
                if was is not None and was != self.me:
                    taken.setdefault(was, []).append(shard)
            for was, shards in taken.items():
                log.info("cluster: took over %d shard(s) from %s: %s", len(shards), was, sorted(shards))
        changed = frozenset(held) != self.held
        self.held = frozenset(held)
        if changed:
            log.info("cluster: sending for %d of %d outbox shards (%d worker(s) alive, %d sending)",
                     len(self.held), SHARDS, beat.live, beat.serving)
            self._on_change()

    async def leave(self) -> None:
        """A clean stop: give every shard back at once, so the others take over at their next beat."""
        self._stopping = True
        await self._after_beat()  # what this worker counted since its last beat is shared before it goes
        async with self.batch_lock:
            self.held = frozenset()
            try:
                await self.store.leave()
            except Exception:
                log.warning("cluster: could not release the leases; they run out in %.0fs", self.lease_seconds)
        log.info("cluster: left")

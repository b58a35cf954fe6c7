# SPDX-License-Identifier: AGPL-3.0-or-later
"""Per-key rate limits shared by the workers of a cluster (policy layer): imports only
spamguard, gets its store (storage/cluster.SpamUsage) from the composition root, and
never waits for the database on a stanza's path: admitting is local and synchronous,
the shared state is exchanged once per heartbeat (`SharedLimits`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Collection, Mapping
from typing import Protocol

from .buckets import TokenBuckets

log = logging.getLogger(__name__)

#: a limit of A a minute lets A through at once: the shared bucket, like the local one, holds a minute
BURST_SECONDS = 60.0
#: keys shared at most (a flood of distinct senders beyond it is limited per worker)
MAX_KEYS = 20_000
#: a flush that takes longer is given up: the heartbeat it runs after must go on
FLUSH_SECONDS = 2.0


class LevelStore(Protocol):
    """Where the shared levels live (storage/cluster.SpamUsage on PostgreSQL)."""

    async def charge(self, seconds: Mapping[str, float], watched: Collection[str]) -> dict[str, float]:
        """Add `seconds` to each key's level; return the level of every key of `seconds` and
        `watched` (0 if drained)."""
        ...


class _Key:
    """What this worker knows and owes of one key's shared level."""

    __slots__ = ("at", "cost", "level", "since_read", "unreported")

    def __init__(self, cost: float, at: float) -> None:
        self.cost = cost            # seconds one admission adds to the level
        self.level = 0.0            # the level as last read (or estimated), in seconds
        self.at = at                # when, on the guard's clock
        self.since_read = 0         # admitted here since, not in `level`
        self.unreported = 0         # admitted here and not yet added to the shared level


class SharedLimits:
    """This worker's view of the cluster's shared levels.

    ejabberd sends one blog's stanzas to one worker, but a sender can spread a limit's
    traffic over several blogs and the service JID, so over several workers (the
    scale-out review, item #12). Each limited key (a limit's name and a bare JID or
    registrable domain) therefore also has one shared bucket in the database, kept as a
    *level*, as in the generic cell rate algorithm: every admission under a limit of A a
    minute adds 60/A seconds, the level drains one second per second, and the bucket
    holds a minute (A admissions at once, like a worker's local bucket). At every
    heartbeat (`flush`) a worker adds what it admitted to the shared levels and reads
    back the level of every key it knows, in one statement. Between two flushes it
    admits at most its share of the room its last read left, ceil(room / N) for N live
    workers; the room grows as the level drains. While its share is spent, a key is
    refused with the reason its local bucket would give.

    Debt is kept: whatever the cluster admits beyond a full bucket stays charged to
    the key, which is refused on every worker until it has drained.

    Bound, for a limit of A a minute, N live workers and a flush every h seconds:
    over any T seconds the cluster admits at most A·(T + h)/60 + 2A + N for one
    key, where one process alone admits at most A·T/60 + A. The overshoot is thus
    at most one bucket, one admission per worker and one flush interval at the rate
    (A + N + A·h/60), once, however long T is: not N× the limit, and not again every
    minute. Why: a worker admits only while its last read left room for one, and at
    most its share of that room, ceil(A/N) at most, per read. Once the level has
    reached a full bucket (60 s), each worker adds at most one more share, taken on
    a read from before. So the level never exceeds 2·60 s + N·60/A. Everything admitted
    is charged to it within h, and it drains one second per second. This assumes the
    flushes succeed; while the store is away, each worker admits as if every worker
    had admitted what it did, so together they keep to the rate A.

    A sender that is new to a worker (no level read yet) gets the share of an empty
    bucket there, ceil(A/N): a legitimate burst on one worker is split N ways until
    the next heartbeat.

    The Guard keeps it; the composition root flushes it after every heartbeat.
    """

    def __init__(self, store: LevelStore, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        self._keys: dict[str, _Key] = {}
        # a flush at leave may meet one after the last heartbeat: one at a time, or counts go twice
        self._flushing = asyncio.Lock()
        #: live workers, as the last heartbeat counted them (each admits 1/N of the room)
        self.workers = 1
        #: admissions of keys beyond MAX_KEYS, limited by this worker's buckets only
        self.unshared = 0

    def admits(self, key: str) -> bool:
        """Whether this worker's share of `key`'s shared bucket has room for one more."""
        k = self._keys.get(key)
        if k is None:
            return True  # nothing read or spent: the share of an empty bucket is at least 1
        room = (BURST_SECONDS - max(0.0, k.level - (self._now() - k.at))) / k.cost
        return room >= 1 and k.since_read < math.ceil(room / self.workers)

    def spent(self, key: str, per_minute: int) -> None:
        """Count one admission of `key` (a limit of `per_minute`), to be charged at the next flush.
        Past MAX_KEYS keys a new one is not shared (its local bucket still limits it): a flood
        of senders never makes one flush, or the heartbeat that runs it, unboundedly large."""
        k = self._keys.get(key)
        if k is None:
            if len(self._keys) >= MAX_KEYS:
                self.unshared += 1
                return
            k = self._keys[key] = _Key(60.0 / per_minute, self._now())
        k.since_read += 1
        k.unreported += 1

    def buckets(self, name: str, local: TokenBuckets) -> SharedBuckets:
        """`local`'s buckets, each also drawing on the shared bucket of `name:key`."""
        return SharedBuckets(name, local, self)

    async def flush(self, workers: int) -> None:
        """Charge what this worker admitted since the last flush and read back every level it
        knows, in one store call; forget the keys that have drained.

        Args:
            workers: the live workers now (this one included).
        """
        async with self._flushing:
            await self._flush(max(1, workers))

    async def _flush(self, workers: int) -> None:
        self.workers = workers
        sent = {key: k.unreported for key, k in self._keys.items() if k.unreported}
        watched = [key for key, k in self._keys.items() if not k.unreported]
        if not sent and not watched:
            return
        try:
            levels = await asyncio.wait_for(
                self._store.charge({key: n * self._keys[key].cost for key, n in sent.items()}, watched),
                FLUSH_SECONDS)
        except Exception:
            log.warning("spamguard: could not share %d rate-limit keys with the cluster; until it can, this "
                        "worker admits as if every worker admitted what it did", len(sent) + len(watched),
                        exc_info=True)
            self._estimate()
            return
        now = self._now()
        for key, level in levels.items():
            k = self._keys.get(key)
            if k is None:
                continue
            k.unreported -= sent.get(key, 0)
            # admitted during the round trip: charged at the next flush, not in this level
            k.since_read = k.unreported
            k.level, k.at = level, now
            if level <= 0 and not k.unreported:
                del self._keys[key]

    def _estimate(self) -> None:
        """Without the store, go on as if every worker had admitted what this one did: its share
        then grows only as the levels drain, so the workers together keep to the configured
        rate however long the store is away (this worker's admissions are charged when it
        answers again)."""
        now = self._now()
        for k in self._keys.values():
            k.level = max(0.0, k.level - (now - k.at)) + k.since_read * k.cost * self.workers
            k.at, k.since_read = now, 0

    def __len__(self) -> int:
        return len(self._keys)


class SharedBuckets:
    """A limit's local token buckets whose keys also draw on the cluster's shared levels."""

    def __init__(self, name: str, local: TokenBuckets, shared: SharedLimits) -> None:
        self.local = local
        self.per_minute = local.per_minute
        self._prefix = name + ":"
        self._shared = shared

    def take(self, key: str) -> bool:
        """Admit one of `key`: False if this worker's share of the shared bucket is spent (the
        stanza costs no local token then) or the local bucket is empty. 0/min disables."""
        if self.per_minute <= 0:
            return True
        shared_key = self._prefix + key
        if not self._shared.admits(shared_key) or not self.local.take(key):
            return False
        self._shared.spent(shared_key, self.per_minute)
        return True

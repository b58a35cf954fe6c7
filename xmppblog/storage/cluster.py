# SPDX-License-Identifier: AGPL-3.0-or-later
"""The shared state of a cluster's workers, on PostgreSQL (storage layer).

Every time here is the database's clock (`now()`), never a worker's: workers on
several machines then agree on when a lease ran out. Each statement is its own
short transaction; nothing is held across network I/O. The tables are created by
migrations 0013 and 0014.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..core.shards import SHARDS

_SETUP = text("INSERT INTO cluster_leases (name) SELECT 'shard:' || n FROM generate_series(0, :last) AS n "
              "ON CONFLICT (name) DO NOTHING")
_ALIVE = text("INSERT INTO cluster_workers (id, started_at, seen_at, serving) VALUES (:me, now(), now(), :serving) "
              "ON CONFLICT (id) DO UPDATE SET seen_at = now(), serving = :serving")
_RENEW = text("UPDATE cluster_leases SET until = now() + make_interval(secs => :lease) "
              "WHERE owner = :me AND until > now() RETURNING name")
_LIVE = text("SELECT count(*) FROM cluster_workers WHERE seen_at > now() - make_interval(secs => :lease)")
#: the workers that share the outbox: alive, and able to send
_SERVING = text("SELECT count(*) FROM cluster_workers WHERE seen_at > now() - make_interval(secs => :lease) "
                "AND serving")
#: a dead worker is forgotten by exactly one of the others (the DELETE decides which)
_BURY = text("DELETE FROM cluster_workers WHERE seen_at <= now() - make_interval(secs => :lease) AND id <> :me "
             "RETURNING id, seen_at")
_ACQUIRE = text(
    "WITH free AS (SELECT name, owner FROM cluster_leases WHERE name LIKE 'shard:%' "
    "AND (owner IS NULL OR until IS NULL OR until <= now()) ORDER BY name LIMIT :n FOR UPDATE SKIP LOCKED) "
    "UPDATE cluster_leases l SET owner = :me, until = now() + make_interval(secs => :lease) FROM free "
    "WHERE l.name = free.name RETURNING l.name, free.owner")
_RELEASE = text("UPDATE cluster_leases SET owner = NULL, until = NULL WHERE owner = :me AND name = ANY(:names)")
_LEAVE = (text("UPDATE cluster_leases SET owner = NULL, until = NULL WHERE owner = :me"),
          text("DELETE FROM online_contacts WHERE worker = :me"),
          text("DELETE FROM cluster_workers WHERE id = :me"))
_SEEN = text("INSERT INTO online_contacts (contact, worker, seen_at) VALUES (:contact, :me, now()) "
             "ON CONFLICT (contact, worker) DO UPDATE SET seen_at = now()")
_GONE = text("DELETE FROM online_contacts WHERE contact = :contact AND worker = :me")
_FORGET = text("DELETE FROM online_contacts WHERE worker = :me")
_ONLINE = text("SELECT DISTINCT o.contact FROM online_contacts o JOIN cluster_workers w ON w.id = o.worker "
               "WHERE o.contact = ANY(:contacts) AND w.seen_at > now() - make_interval(secs => :lease)")
_ORPHANS = text("DELETE FROM online_contacts o WHERE NOT EXISTS "
                "(SELECT 1 FROM cluster_workers w WHERE w.id = o.worker)")

#: Adds each key's charge to its shared level (seconds of traffic not yet drained; a drained
#: key's level restarts from now) and reads back the level of every key charged or watched.
#: Keys are sorted, so two workers charging the same keys lock their rows in the same order.
_CHARGE = text(
    "WITH charged AS (INSERT INTO spam_usage AS u (key, drained_at) "
    "SELECT k, now() + make_interval(secs => s) "
    "FROM unnest(CAST(:keys AS varchar[]), CAST(:seconds AS float8[])) AS c(k, s) "
    "ON CONFLICT (key) DO UPDATE SET drained_at = GREATEST(u.drained_at, now()) + (excluded.drained_at - now()) "
    "RETURNING key, drained_at) "
    "SELECT key, CAST(extract(epoch FROM drained_at - now()) AS float8) FROM charged "
    "UNION ALL SELECT key, CAST(extract(epoch FROM drained_at - now()) AS float8) FROM spam_usage "
    "WHERE key = ANY(CAST(:watched AS varchar[]))")
#: a drained key is the same as no row
_EXPIRE = text("DELETE FROM spam_usage WHERE drained_at < now()")


def _shard(name: str) -> int:
    return int(name.split(":", 1)[1])


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What one heartbeat learnt."""

    live: int                                   # workers alive, this one included
    serving: int                                # of which can send (hold a slot)
    held: frozenset[int]                        # the shards whose leases this worker renewed
    buried: tuple[tuple[str, datetime], ...]    # dead workers forgotten now: (id, last seen)


class ClusterStore:
    """Heartbeats, shard leases and shared presence for worker `me`."""

    def __init__(self, engine: AsyncEngine, me: str, lease_seconds: float) -> None:
        self._engine = engine
        self.me = me
        self._lease = float(lease_seconds)

    async def setup(self) -> None:
        """The lease rows of every shard (idempotent)."""
        async with self._engine.begin() as conn:
            await conn.execute(_SETUP, {"last": SHARDS - 1})

    async def others_alive(self) -> int:
        """Live workers other than this one (0 at a cold start of the cluster)."""
        async with self._engine.begin() as conn:
            n = int((await conn.execute(_LIVE, {"lease": self._lease})).scalar_one())
            mine = (await conn.execute(text("SELECT 1 FROM cluster_workers WHERE id = :me AND seen_at > now() "
                                            "- make_interval(secs => :lease)"),
                                       {"me": self.me, "lease": self._lease})).first()
        return n - (1 if mine else 0)

    async def heartbeat(self, serving: bool) -> Heartbeat:
        """Say this worker is alive (and whether it can send), renew its leases, forget dead
        workers (and what they saw)."""
        params = {"me": self.me, "lease": self._lease, "serving": serving}
        async with self._engine.begin() as conn:
            await conn.execute(_ALIVE, params)
            held = frozenset(_shard(r[0]) for r in await conn.execute(_RENEW, params))
            buried = tuple((r[0], r[1]) for r in await conn.execute(_BURY, params))
            if buried:
                await conn.execute(_ORPHANS)
            live = int((await conn.execute(_LIVE, params)).scalar_one())
            sending = int((await conn.execute(_SERVING, params)).scalar_one())
        return Heartbeat(live, sending, held, buried)

    async def acquire(self, n: int) -> list[tuple[int, str | None]]:
        """Up to `n` shards no live worker holds: (shard, its previous holder)."""
        if n <= 0:
            return []
        async with self._engine.begin() as conn:
            rows = (await conn.execute(_ACQUIRE, {"me": self.me, "lease": self._lease, "n": n})).all()
        return [(_shard(name), was) for name, was in rows]

    async def release(self, shards: Sequence[int]) -> None:
        if shards:
            async with self._engine.begin() as conn:
                await conn.execute(_RELEASE, {"me": self.me, "names": [f"shard:{s}" for s in shards]})

    async def leave(self) -> None:
        """A clean stop: every lease released at once, what this worker saw forgotten."""
        async with self._engine.begin() as conn:
            for statement in _LEAVE:
                await conn.execute(statement, {"me": self.me})

    # ------------------------------------------------------------ who is online, as the cluster saw it

    async def seen_online(self, contact: str, online: bool) -> None:
        """This worker now sees `contact` online (or no longer)."""
        async with self._engine.begin() as conn:
            await conn.execute(_SEEN if online else _GONE, {"contact": contact, "me": self.me})

    async def forget_seen(self) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(_FORGET, {"me": self.me})

    async def online_among(self, contacts: Sequence[str]) -> set[str]:
        """Those of `contacts` some live worker sees online."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(_ONLINE, {"contacts": list(contacts), "lease": self._lease})
            return {r[0] for r in rows}


class SpamUsage:
    """The shared buckets of spamguard's per-key limits (spamguard/shared.SharedLimits' store).

    A key's level is `drained_at - now()`: the seconds of traffic charged to it and
    not yet drained, by the database's clock.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def charge(self, seconds: Mapping[str, float], watched: Collection[str]) -> dict[str, float]:
        """Add `seconds` to each key's level, in one statement, and read back the levels.

        Args:
            seconds: key -> seconds to add (what this worker admitted since it last charged).
            watched: keys charged nothing this time whose level this worker wants to know.

        Returns:
            key -> level in seconds (0 if drained) for every key of `seconds` and `watched`.
        """
        if not seconds and not watched:
            return {}
        keys = sorted(seconds)
        async with self._engine.begin() as conn:
            rows = await conn.execute(_CHARGE, {"keys": keys, "seconds": [float(seconds[k]) for k in keys],
                                                "watched": [k for k in watched if k not in seconds]})
            levels = {key: max(0.0, level) for key, level in rows}
        return {key: levels.get(key, 0.0) for key in (*keys, *watched)}

    async def expire(self) -> int:
        """Forget the keys that have drained; returns how many."""
        async with self._engine.begin() as conn:
            return (await conn.execute(_EXPIRE)).rowcount


_BUMP = text("INSERT INTO cluster_versions (name, version) VALUES (:name, 1) "
             "ON CONFLICT (name) DO UPDATE SET version = cluster_versions.version + 1 RETURNING version")
_VERSION = text("SELECT version FROM cluster_versions WHERE name = :name")


class Versions:
    """Counters of changes to state each worker holds in memory (both databases): the worker
    that changes it bumps the counter, the others reload when they see it move."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def bump(self, name: str) -> int:
        """Count one more change of `name`; returns the new version."""
        async with self._engine.begin() as conn:
            return int((await conn.execute(_BUMP, {"name": name})).scalar_one())

    async def read(self, name: str) -> int:
        """The version of `name` (0: never changed)."""
        async with self._engine.connect() as conn:
            return int((await conn.execute(_VERSION, {"name": name})).scalar() or 0)

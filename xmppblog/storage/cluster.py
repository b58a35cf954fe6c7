# SPDX-License-Identifier: AGPL-3.0-or-later
"""The shared state of a cluster's workers, on PostgreSQL (storage layer).

Every time here is the database's clock (`now()`), never a worker's: workers on
several machines then agree on when a lease ran out. Each statement is its own
short transaction; nothing is held across network I/O. The tables are created by
migrations 0013 and 0014.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..core.shards import SHARDS

_SETUP = text("INSERT INTO cluster_leases (name) SELECT 'shard:' || n FROM generate_series(0, :last) AS n "
              "ON CONFLICT (name) DO NOTHING")
#: alive: a new row, this process's own row renewed, or a dead process's row with our id taken
#: over; nothing when another live process beats under the same id. `fresh`: the row was
#: (re)inserted, i.e. this worker had been forgotten (buried) by the others
_ALIVE = text(
    "INSERT INTO cluster_workers (id, started_at, seen_at, serving, token) VALUES (:me, now(), now(), :serving, "
    ":token) ON CONFLICT (id) DO UPDATE SET seen_at = now(), serving = :serving, token = :token "
    "WHERE cluster_workers.token = :token OR cluster_workers.seen_at <= now() - make_interval(secs => :lease) "
    "RETURNING (xmax = 0) AS fresh")
_RENEW = text("UPDATE cluster_leases SET until = now() + make_interval(secs => :lease) "
              "WHERE owner = :me AND until > now() RETURNING name")
_LIVE = text("SELECT count(*) FROM cluster_workers WHERE seen_at > now() - make_interval(secs => :lease)")
#: the live workers, and of those the ones that share the outbox (able to send)
_LIVE_SERVING = text("SELECT count(*), count(*) FILTER (WHERE serving) FROM cluster_workers "
                     "WHERE seen_at > now() - make_interval(secs => :lease)")
#: A dead worker is forgotten by exactly one of the others (the DELETE decides which), and in
#: the same statement the remote notifications sent in its last moments are due again: their
#: bounces may have come back to its slots while nobody read them. "Its last moments" start two
#: leases before it was last seen: one for what was in flight, one for the skew between the
#: database's clock (`seen_at`) and the workers' clocks that stamped `sent_at` (kept in sync
#: by NTP). Every worker's rows in that window are sent again, not only the dead one's: a
#: bounce is routed by the blog it is addressed to, whichever worker sent the notification.
_BURY = text(
    "WITH gone AS (DELETE FROM cluster_workers WHERE seen_at <= now() - make_interval(secs => :lease) "
    "AND id <> :me RETURNING id, seen_at), "
    "requeued AS (UPDATE outbox SET sent_at = NULL, next_at = now() WHERE sent_at IS NOT NULL "
    "AND sent_at >= (SELECT min(seen_at) FROM gone) - make_interval(secs => 2 * :lease) RETURNING 1) "
    "SELECT id, seen_at, (SELECT count(*) FROM requeued) FROM gone")
_ACQUIRE = text(
    "WITH free AS (SELECT name, owner FROM cluster_leases WHERE name LIKE 'shard:%' "
    "AND (owner IS NULL OR until IS NULL OR until <= now()) ORDER BY name LIMIT :n FOR UPDATE SKIP LOCKED) "
    "UPDATE cluster_leases l SET owner = :me, until = now() + make_interval(secs => :lease) FROM free "
    "WHERE l.name = free.name RETURNING l.name, free.owner")
_RELEASE = text("UPDATE cluster_leases SET owner = NULL, until = NULL WHERE owner = :me AND name = ANY(:names)")
_LEAVE = (text("UPDATE cluster_leases SET owner = NULL, until = NULL WHERE owner = :me"),
          text("DELETE FROM online_contacts WHERE worker = :me"),
          text("DELETE FROM cluster_workers WHERE id = :me AND token = :token"))
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


def cluster_engine(url: str) -> AsyncEngine:
    """The engine of a worker's cluster statements (heartbeats, leases, shared presence and
    limits): a small pool of its own, so they never wait for the requests' pool, and a
    publish that holds a connection of that pool and asks who is online never waits for a
    second one of it (all its connections could be held by publishes doing the same)."""
    return create_async_engine(url, pool_size=2, max_overflow=6, pool_pre_ping=True)


def _shard(name: str) -> int:
    return int(name.split(":", 1)[1])


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What one heartbeat learnt."""

    live: int                                   # workers alive, this one included
    serving: int                                # of which can send (hold a slot)
    held: frozenset[int]                        # the shards whose leases this worker renewed
    buried: tuple[tuple[str, datetime], ...]    # dead workers forgotten now: (id, last seen)
    #: this worker's row was inserted anew: at its first beat, or after the others had taken it
    #: for dead and forgotten it (with what it saw online)
    fresh: bool = False
    #: remote notifications due again because their bounces may have reached a buried worker
    requeued: int = 0


class WorkerIdInUse(Exception):
    """Another live process beats under this worker's id."""


async def live_workers(engine: AsyncEngine, lease_seconds: float) -> int:
    """How many workers of a cluster beat on this database now (0 on SQLite, or before any did)."""
    if engine.dialect.name != "postgresql":
        return 0
    async with engine.connect() as conn:
        return int((await conn.execute(_LIVE, {"lease": float(lease_seconds)})).scalar_one())


class ClusterStore:
    """Heartbeats, shard leases and shared presence for worker `me`."""

    def __init__(self, engine: AsyncEngine, me: str, lease_seconds: float) -> None:
        self._engine = engine
        self.me = me
        self._lease = float(lease_seconds)
        self._token = secrets.token_hex(8)

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
        workers (what they saw, and the bounces they may have missed), in one transaction."""
        params = {"me": self.me, "lease": self._lease, "serving": serving, "token": self._token}
        async with self._engine.begin() as conn:
            alive = (await conn.execute(_ALIVE, params)).first()
            if alive is None:
                raise WorkerIdInUse(f"[cluster] worker_id {self.me!r} is in use by another live worker; "
                                    "give each worker its own (or leave it empty)")
            held = frozenset(_shard(r[0]) for r in await conn.execute(_RENEW, params))
            rows = (await conn.execute(_BURY, params)).all()
            buried = tuple((r[0], r[1]) for r in rows)
            if buried:
                await conn.execute(_ORPHANS)
            live, sending = (await conn.execute(_LIVE_SERVING, params)).one()
        return Heartbeat(int(live), int(sending), held, buried, bool(alive.fresh), int(rows[0][2]) if rows else 0)

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
                await conn.execute(statement, {"me": self.me, "token": self._token})

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

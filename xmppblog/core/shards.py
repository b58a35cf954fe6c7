# SPDX-License-Identifier: AGPL-3.0-or-later
"""How the outbox is shared among the workers of a cluster (core layer, stdlib only).

Every planned notification belongs to one of SHARDS shards, by its sender (a
blog JID, or the service JID), so one blog's notifications are sent by one
worker at a time, in the order they were planned. Each live worker holds at
most `share(live)` shards under a lease; a worker that dies stops renewing its
leases and the others take its shards over. Jobs that must run once in the
cluster (resync, expiry) run on the holder of their own shard.
"""

from __future__ import annotations

import math
import zlib

#: fixed for the life of a database: a notification's shard is stored with it
SHARDS = 64


def shard_of(sender: str) -> int:
    """The shard of a notification from `sender` (stable across processes and versions)."""
    return zlib.crc32(sender.encode("utf-8")) % SHARDS


def share(live_workers: int) -> int:
    """How many shards each of `live_workers` workers may hold (all of them, together)."""
    return math.ceil(SHARDS / max(1, live_workers))


def job_shard(job: str) -> int:
    """The shard whose holder runs the once-per-cluster job `job`."""
    return shard_of(f"job:{job}")

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Who is online, shared by the workers of a cluster (cluster layer).

A contact's presence reaches the workers holding the slots of the blogs they
follow, while a post may be planned on any worker (a chat `post` on the
service JID's, a mention naming anyone). Each worker keeps its own view
(im/online.OnlineTracker, per resource) and writes to the database only when
that view of a contact changes: first resource seen, last one gone. A contact
is online if some live worker sees them; a dead worker's view stops counting
with its heartbeat. Writes go through one queue, in order, off the presence
handler's path; a lost write only makes a follower look offline until their
next presence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ..im.online import OnlineTracker
from ..storage.cluster import ClusterStore

log = logging.getLogger(__name__)

#: writes waiting beyond this are dropped (the database is down; presence comes again)
MAX_QUEUED = 10_000


class SharedOnline(OnlineTracker):
    """core.ports.OnlineView across the cluster, fed like the tracker it extends."""

    def __init__(self, store: ClusterStore) -> None:
        super().__init__()
        self._store = store
        self._writes: asyncio.Queue[tuple[str, bool] | None] = asyncio.Queue(MAX_QUEUED)
        self._writer: asyncio.Task[None] | None = None
        self.dropped = 0

    def _tell(self, contact: str, online: bool) -> None:
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())
        try:
            self._writes.put_nowait((contact, online))
        except asyncio.QueueFull:
            self.dropped += 1

    async def _write(self) -> None:
        while (change := await self._writes.get()) is not None:
            try:
                if change[0]:
                    await self._store.seen_online(*change)
                else:  # everything this worker saw is forgotten (it reconnected and asks again)
                    await self._store.forget_seen()
            except Exception:
                self.dropped += 1
                log.warning("cluster: could not share that %s is %s", change[0],
                            "online" if change[1] else "offline", exc_info=True)

    def available(self, bare: str, resource: str) -> None:
        was = self.is_online(bare)
        super().available(bare, resource)
        if not was:
            self._tell(bare, True)

    def unavailable(self, bare: str, resource: str) -> None:
        was = self.is_online(bare)
        super().unavailable(bare, resource)
        if was and not self.is_online(bare):
            self._tell(bare, False)

    def reshare(self) -> None:
        """Write this worker's whole view again (the others forgot it: they took this worker for
        dead while it was alive)."""
        for bare in list(self._resources):
            self._tell(bare, True)

    def clear(self) -> None:
        if self._resources:
            self._tell("", False)
        super().clear()

    async def online_among(self, bares: Sequence[str]) -> set[str]:
        """Seen online by this worker, or by another live one."""
        here = await super().online_among(bares)
        rest = [b for b in bares if b not in here]
        return here | (await self._store.online_among(rest) if rest else set())

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._writer is not None:
            await self._writes.put(None)
            await asyncio.wait_for(self._writer, timeout=5)

# SPDX-License-Identifier: AGPL-3.0-or-later
"""GET /api/stream: Server-Sent Events of every post core/stream.py lets out (adapter layer).

One hub per process reads new posts from the database (at most every
POLL_SECONDS, at once when this process commits) into a ring of the latest
RING posts, shared by every client: a thousand clients cost one query per
poll, not a thousand. A client resuming (`Last-Event-ID`, up to a day back)
first reads pages from the database, then follows the ring. Each event:

    event: post
    id: <opaque cursor>
    data: <one JSON object: the post's fields and `entry`, the signed Atom entry>

and a comment line every `heartbeat` seconds keeps proxies from closing an idle
stream. Filters (`author`, `tag`, `q`) use the search query language.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re

from ..core import errors
from ..core.model import FoundPost
from ..core.stream import PostStream

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
#: at most this many reads per second however often this process commits
MIN_GAP_SECONDS = 0.1
#: a comment line this often keeps an idle stream open through proxies
HEARTBEAT_SECONDS = 15.0
RING = 2000
PAGE = 200
#: rows each read goes back behind the position read: transactions that commit out of order
REREAD = 100
_CURSOR = re.compile(r"v1-([0-9a-f]{1,15})")


def cursor_of(position: int) -> str:
    """The opaque `id:` of an event (a store position, versioned)."""
    return f"v1-{position:x}"


def position_of(cursor: str) -> int:
    """Raises BadRequest unless `cursor` is one this server gave out."""
    m = _CURSOR.fullmatch(cursor.strip())
    if m is None:
        raise errors.BadRequest("Last-Event-ID: not a cursor of this stream")
    return int(m.group(1), 16)


class StreamHub:
    """Reads new posts once per process for every client, into a ring in the order read.

    Clients follow the ring by its sequence numbers, not by post positions: a transaction
    that took a position earlier and committed later (PostgreSQL) is read on a later pass
    (each pass reads REREAD rows back) and still reaches every client, after the posts it
    was overtaken by. A client only takes from the ring what was read after it joined, so
    nothing retracted or protected before that is replayed to it from memory.
    """

    def __init__(self, stream: PostStream, poll_seconds: float = POLL_SECONDS, ring: int = RING) -> None:
        self.stream = stream
        self.poll_seconds = poll_seconds
        #: (sequence, position, post), in the order read
        self.recent: collections.deque[tuple[int, int, FoundPost]] = collections.deque(maxlen=ring)
        self._in_ring: set[int] = set()
        #: how many posts were put in the ring since this process started
        self.seq = 0
        #: rows read up to here (skipped ones included), from this position on
        self.position = self._start = 0
        self.clients = 0
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Something was committed here: read at once rather than at the next poll."""
        self._wake.set()

    async def join(self) -> int:
        """Count a client in; returns the sequence it follows the ring from."""
        if self._reader is None or self._reader.done():
            self.position = self._start = await self.stream.last_position()
            self.recent.clear()
            self._in_ring.clear()
            self._reader = asyncio.ensure_future(self._read())
        self.clients += 1
        return self.seq

    def leave(self) -> None:
        self.clients -= 1

    async def _read(self) -> None:
        while self.clients > 0:
            self._wake.clear()  # before reading: a commit during the read or the gap wakes the next one
            try:
                page = await self.stream.after(max(self._start, self.position - REREAD), PAGE)
            except errors.BlogError:
                log.warning("stream: could not read new posts; trying again")
                page = None
            if page is not None:
                added = False
                for at, post in page.posts:
                    if at in self._in_ring:
                        continue
                    if len(self.recent) == self.recent.maxlen:
                        self._in_ring.discard(self.recent[0][1])
                    self.seq += 1
                    self.recent.append((self.seq, at, post))
                    self._in_ring.add(at)
                    added = True
                moved = page.position > self.position
                self.position = max(self.position, page.position)
                if added:
                    async with self._changed:
                        self._changed.notify_all()
                if page.full and moved:
                    continue
            await asyncio.sleep(MIN_GAP_SECONDS)  # a burst of commits costs one read per gap
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        self._reader = None

    async def wait(self, seq: int, timeout: float) -> bool:
        """Until the ring has posts after sequence `seq`; False if `timeout` passed first."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.seq > seq), timeout)
            except TimeoutError:
                return False
        return True

    def since(self, seq: int) -> list[tuple[int, int, FoundPost]] | None:
        """The ring's posts after sequence `seq`; None if some of them left the ring already
        (the client is too slow: it catches up from the database)."""
        if self.recent and self.recent[0][0] > seq + 1:
            return None
        out = []
        for entry in reversed(self.recent):  # the newest few, not the whole ring, for every client
            if entry[0] <= seq:
                break
            out.append(entry)
        out.reverse()
        return out


class StreamLimits:
    """How many streams one client address, and the whole process, may hold open."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.open: collections.Counter[str] = collections.Counter()

    def take(self, client: str) -> bool:
        if sum(self.open.values()) >= self.total or self.open[client] >= self.per_client:
            return False
        self.open[client] += 1
        return True

    def give_back(self, client: str) -> None:
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]



# SPDX-License-Identifier: AGPL-3.0-or-later
"""GET /api/stream: Server-Sent Events of every post core/stream.py lets out (adapter layer).

One hub per process reads new posts from the database (at most every
POLL_SECONDS, at once when this process commits) into a ring of the latest
RING posts, shared by every client: a thousand clients cost one query per
poll, not a thousand. A client resuming from further back (`Last-Event-ID`, up
to a day) reads pages from the database until it reaches the ring. Each event:

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
_CURSOR = re.compile(r"v1-([0-9a-f]{1,16})")


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
    def __init__(self, stream: PostStream, poll_seconds: float = POLL_SECONDS, ring: int = RING) -> None:
        self.stream = stream
        self.poll_seconds = poll_seconds
        self.recent: collections.deque[tuple[int, FoundPost]] = collections.deque(maxlen=ring)
        #: rows read up to here (skipped ones included)
        self.position = 0
        #: the ring holds every streamed post after this position
        self.floor = 0
        self.clients = 0
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Something was committed here: read at once rather than at the next poll."""
        self._wake.set()

    async def join(self) -> None:
        self.clients += 1
        if self._reader is None or self._reader.done():
            self.position = self.floor = await self.stream.last_position()
            self.recent.clear()
            self._reader = asyncio.ensure_future(self._read())

    def leave(self) -> None:
        self.clients -= 1

    async def _read(self) -> None:
        while self.clients > 0:
            try:
                page = await self.stream.after(self.position, PAGE)
            except errors.BlogError:
                log.warning("stream: could not read new posts; trying again")
                page = None
            if page is not None and page.position != self.position:
                for entry in page.posts:
                    if len(self.recent) == self.recent.maxlen:
                        self.floor = self.recent[0][0]
                    self.recent.append(entry)
                self.position = page.position
                async with self._changed:
                    self._changed.notify_all()
                if page.full:
                    continue
            await asyncio.sleep(MIN_GAP_SECONDS)  # a burst of commits costs one read per gap
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        self._reader = None

    async def wait(self, position: int, timeout: float) -> None:
        """Until the hub has read past `position` (or `timeout`)."""
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.position > position), timeout)

    async def next_posts(self, position: int) -> tuple[list[tuple[int, FoundPost]], int]:
        """The posts after `position`, from the ring or (further back) the database, and the
        position to go on from."""
        if position < self.floor:
            page = await self.stream.after(position, PAGE)
            return list(page.posts), page.position
        return [e for e in self.recent if e[0] > position], max(position, self.position)


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



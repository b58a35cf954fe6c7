# SPDX-License-Identifier: AGPL-3.0-or-later
"""The stream hub (http/stream.py): a post whose transaction took a position before another's
but committed after it (PostgreSQL) still reaches the clients."""

from __future__ import annotations

import asyncio

from xmppblog.core.model import NS_MICROBLOG, FoundPost, Item, NodeRef
from xmppblog.core.stream import StreamPage
from xmppblog.http.stream import StreamHub


def post(n: int) -> FoundPost:
    from datetime import UTC, datetime
    now = datetime.now(UTC)
    return FoundPost(NodeRef("alice@blog.example.org", NS_MICROBLOG), Item(f"p{n}", "alice@example.org", "", now, now))


class Store:
    """Committed rows by position; what a read sees is what is committed at that moment."""

    def __init__(self) -> None:
        self.rows: dict[int, FoundPost] = {}

    async def last_position(self) -> int:
        return max(self.rows, default=0)

    async def after(self, position: int, limit: int) -> StreamPage:
        found = sorted((at, p) for at, p in self.rows.items() if at > position)[:limit]
        return StreamPage(tuple(found), found[-1][0] if found else position, len(found) == limit)


async def test_a_late_commit_is_not_skipped():
    store = Store()
    hub = StreamHub(store, poll_seconds=0.02)  # type: ignore[arg-type]
    seq = await hub.join()
    try:
        store.rows[7] = post(7)          # committed first, though it took the later position
        assert await hub.wait(seq, 1.0)
        store.rows[5] = post(5)          # took position 5 earlier, committed now
        got = []
        end = asyncio.get_running_loop().time() + 2
        while len(got) < 2 and asyncio.get_running_loop().time() < end:
            for s, at, _ in hub.since(seq) or []:
                seq = s
                got.append(at)
            await hub.wait(seq, 0.1)
        assert got == [7, 5]
    finally:
        hub.leave()

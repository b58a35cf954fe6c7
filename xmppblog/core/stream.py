# SPDX-License-Identifier: AGPL-3.0-or-later
"""The stream of posts for third-party apps (GET /api/stream, issue #17): every public post
as it is stored, resumable from a position, at most a day back (core layer).

What it carries is what may leave this server for anyone: the public posts of
local blogs (the visibility rule, decided when read) and, on an aggregator, the
posts of the firehoses it follows (each signed and consented by its author,
federation/receive.py). Comments, protected blogs, posts of remote blogs that
local users follow (their authors consented to no network-wide view), the
public timeline's and the firehose's own copies are not in it. Edits come
again (as the same post id); retractions are not streamed.

Positions are the store order of items (never reused), so a client that
reconnects with the last position it saw misses nothing and gets nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .model import NS_FIREHOSE, NS_MICROBLOG, FoundPost, Node
from .ports import Clock
from .transactions import Transactions
from .visibility import NodeMap, is_public

#: how far back a client may resume
KEPT_FOR = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class StreamPage:
    posts: tuple[tuple[int, FoundPost], ...]   # (position, post), oldest first
    position: int                               # where the next page starts (past what was skipped)
    full: bool                                  # `limit` rows were read: more may follow at once


class PostStream:
    def __init__(self, transactions: Transactions, nodes: NodeMap, clock: Clock) -> None:
        self._tx = transactions
        self.nodes = nodes
        self._clock = clock

    def streamed(self, node: Node) -> bool:
        """Whether the posts of `node` are in the stream, and in the network-wide view
        (core/network.py), as read now: the one rule of what may leave this server's own view."""
        if node.remote:
            return node.ref.node == NS_FIREHOSE  # an aggregator's source
        return node.ref.node == NS_MICROBLOG and not self.nodes.is_copies(node.ref) and is_public(node)

    async def last_position(self) -> int:
        """The position of the newest post: a new client starts after it."""
        async with self._tx() as tx:
            return await tx.items.last_position()

    async def after(self, position: int, limit: int) -> StreamPage:
        """The streamed posts stored after `position` (and within KEPT_FOR), at most `limit`
        rows read."""
        since = self._clock.now() - KEPT_FOR
        async with self._tx() as tx:
            rows = await tx.items.stored_after(position, since, limit, (NS_MICROBLOG, NS_FIREHOSE))
        posts = tuple((at, FoundPost(node.ref, item)) for at, node, item in rows if self.streamed(node))
        return StreamPage(posts, rows[-1][0] if rows else position, len(rows) == limit)

# SPDX-License-Identifier: AGPL-3.0-or-later
"""The stream of posts for third-party apps (GET /api/stream, issue #17): every public post
as it is stored, resumable from a position, at most a day back (core layer).

What it carries is what may leave this server for anyone: the public posts of
local blogs whose authors consented (core/discovery.py; the rule is applied when
read, so a withdrawal or a protected blog takes effect at once) and, on an
aggregator, the posts of the firehoses it follows (each signed and consented by
its author, federation/receive.py). Comments, protected blogs, posts of users
who did not consent, posts of remote blogs that local users follow (their
authors consented to no network-wide view), the public timeline's and the
firehose's own copies are not in it. Edits come
again (as the same post id); retractions are not streamed.

Positions are the store order of items (never reused), so a client that
reconnects with the last position it saw misses nothing and gets nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from collections.abc import Sequence

from .discovery import Discovery
from .model import NS_FIREHOSE, NS_MICROBLOG, FoundPost, Item, Node, NodeRef
from .ports import Clock, EntryCodec
from .transactions import Transactions, Tx
from .visibility import NodeMap, is_public

#: how far back a client may resume
KEPT_FOR = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class StreamPage:
    posts: tuple[tuple[int, FoundPost], ...]   # (position, post), oldest first
    position: int                               # where the next page starts (past what was skipped)
    full: bool                                  # `limit` rows were read: more may follow at once


class PostStream:
    def __init__(self, transactions: Transactions, nodes: NodeMap, clock: Clock, discovery: Discovery,
                 codec: EntryCodec) -> None:
        self._tx = transactions
        self.nodes = nodes
        self._clock = clock
        self.discovery = discovery
        self._codec = codec

    async def streamed(self, tx: Tx, rows: Sequence[tuple[int, Node, Item]]) -> list[tuple[int, FoundPost]]:
        """Those of `rows` that are in the stream, and in the network-wide view (core/network.py),
        as read now: the one rule of what may leave this server's own view.

        An aggregator's sources' posts (each signed and consented, federation/receive.py); this
        server's public blog posts that carry their author's consent (core/discovery.py), while
        the blog's owner, and the author if someone else, still consent.
        """
        out = []
        consents: dict[str, bool] = {}
        for at, node, item in rows:
            if node.remote:
                if node.ref.node == NS_FIREHOSE:  # an aggregator's source
                    out.append((at, FoundPost(node.ref, item)))
                continue
            if (node.ref.node != NS_MICROBLOG or self.nodes.is_copies(node.ref) or not is_public(node)
                    or not self.discovery.consents(node) or not self._codec.facts(item.payload).discoverable):
                continue
            if item.publisher != node.owner:  # a publisher affiliate: their own consent counts too
                if item.publisher not in consents:
                    blog = self.nodes.addr.blog_of(item.publisher)
                    own = await tx.nodes.get(NodeRef(blog, NS_MICROBLOG)) if blog is not None else None
                    consents[item.publisher] = self.discovery.consents(own) if own is not None \
                        else self.discovery.default
                if not consents[item.publisher]:
                    continue
            out.append((at, FoundPost(node.ref, item)))
        return out

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
            posts = tuple(await self.streamed(tx, rows))
        return StreamPage(posts, rows[-1][0] if rows else position, len(rows) == limit)

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Search: the query language, the index projection, and bounded queries (core layer).

Query syntax: plain words (all must match), "a phrase", #hashtag,
@user@domain (mentions), from:user@domain (author). `storage/search.py`
turns a `SearchQuery` into SQLite FTS5 or PostgreSQL full-text SQL, off the
event loop and with bounded work: at most MAX_OFFSET results deep, counts
capped at COUNT_CAP. What is indexed is what is public (the visibility rule),
kept so by `SearchIndexer`, a projection of the domain events; every hit is
checked against the rule again when it is served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from . import errors
from .events import AccessChanged, ItemPublished, ItemRetracted, NodeDeleted, NodePurged
from .jid import bare, stored_bare
from .model import Actor, FoundPost, Node, NodeRef
from .ports import EntryCodec, SearchIndex
from .text import hashtags, mentions, search_words
from .transactions import Projections, Transactions, Tx
from .visibility import NodeMap, all_items, is_public, may_read, viewer_for

MAX_QUERY = 256
MAX_TERMS = 12
#: no search result deeper than this is served (cursor/offset), so no query walks the whole index
MAX_OFFSET = 1000
#: totals are counted up to this many; beyond, the answer says "more than COUNT_CAP"
COUNT_CAP = 1000
_TOKEN = re.compile(r'"([^"]*)"|(\S+)')


@dataclass(frozen=True, slots=True)
class SearchDoc:
    ref: NodeRef
    item_id: str
    author: str
    published: datetime
    text: str
    tags: tuple[str, ...]
    mentions: tuple[str, ...]

    @classmethod
    def of(cls, ref: NodeRef, item_id: str, author: str, published: datetime, text: str) -> SearchDoc:
        return cls(ref, item_id, author, published, text, tuple(hashtags(text)), tuple(mentions(text)))


@dataclass(frozen=True, slots=True)
class SearchQuery:
    words: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    tags: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    author: str | None = None
    by_relevance: bool = False
    raw: str = field(default="", compare=False)

    @property
    def empty(self) -> bool:
        return not (self.words or self.phrases or self.tags or self.mentions or self.author)

    def matches(self, text: str, author: str) -> bool:
        """Whether a post with this text and author is a hit, as the index would find it: every
        word and tag, each phrase as consecutive words, the mentions, the author. For what the
        index does not hold (comments, protected blogs), read by a bounded scan."""
        if self.author is not None and stored_bare(author) != self.author:
            return False
        said = search_words(text)
        if not set(self.words) <= set(said):
            return False
        for phrase in self.phrases:
            n = len(phrase)
            if not any(tuple(said[i:i + n]) == phrase for i in range(len(said) - n + 1)):
                return False
        return set(self.tags) <= set(hashtags(text)) and set(self.mentions) <= set(mentions(text))


def parse_query(q: str, by_relevance: bool = False) -> SearchQuery:
    """Parse a user's query.

    Raises:
        BadRequest: empty, too long, too many terms, or a malformed from:/@ JID.
    """
    q = q.strip()
    if not q:
        raise errors.BadRequest("search for something: words, \"a phrase\", #tag, @user@domain, from:user@domain")
    if len(q) > MAX_QUERY:
        raise errors.BadRequest(f"queries are limited to {MAX_QUERY} characters")
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    tags: list[str] = []
    ments: list[str] = []
    author = None
    for m in _TOKEN.finditer(q):
        phrase, token = m.group(1), m.group(2)
        if phrase is not None:
            ws = tuple(search_words(phrase))
            if ws:
                phrases.append(ws)
        elif token.casefold().startswith("from:"):
            author = bare(token[5:])
        elif token.startswith("#") and len(token) > 1:
            # the tag as posts are indexed (hashtags()), so `#foo-bar` finds what was tagged #foo-bar
            tags += (hashtags(token) or search_words(token[1:]))[:1]
        elif token.startswith("@") and "@" in token[1:]:
            ments.append(bare(token[1:]))
        else:
            words += search_words(token)
    if len(words) + len(phrases) + len(tags) + len(ments) > MAX_TERMS:
        raise errors.BadRequest(f"use at most {MAX_TERMS} search terms")
    query = SearchQuery(tuple(words), tuple(phrases), tuple(tags), tuple(ments), author, by_relevance, q)
    if query.empty:
        raise errors.BadRequest("nothing to search for in that query")
    return query


@dataclass(frozen=True, slots=True)
class Results:
    posts: list[FoundPost]
    total: int          # at most COUNT_CAP
    more: bool          # more than `total` match

    @property
    def total_text(self) -> str:
        return f"more than {self.total:,}" if self.more else str(self.total)


class SearchIndexer:
    """Keeps the full-text index equal to the public posts (a projection of the domain events)."""

    def __init__(self, nodes: NodeMap, codec: EntryCodec) -> None:
        self.nodes = nodes
        self._codec = codec

    def register(self, projections: Projections) -> None:
        projections.on(ItemPublished, self.published)
        projections.on(ItemRetracted, self.retracted)
        projections.on(NodePurged, self.emptied)
        projections.on(NodeDeleted, self.emptied)
        projections.on(AccessChanged, self.access_changed)

    def indexed(self, node: Node) -> bool:
        """Blog posts and cached remote posts are indexed; comments and the copies of the public
        timeline and the firehose are not."""
        return not node.ref.of_post and not self.nodes.is_copies(node.ref)

    async def published(self, tx: Tx, ev: ItemPublished) -> None:
        if self.indexed(ev.node) and is_public(ev.access):
            await tx.search.index(SearchDoc.of(ev.node.ref, ev.item.item_id, ev.item.publisher, ev.item.published,
                                               ev.text), new=ev.new)

    async def retracted(self, tx: Tx, ev: ItemRetracted) -> None:
        if self.indexed(ev.node):
            await tx.search.remove(ev.node.ref, ev.item_id)

    async def emptied(self, tx: Tx, ev: NodePurged | NodeDeleted) -> None:
        if self.indexed(ev.node):
            await tx.search.remove(ev.node.ref)

    async def access_changed(self, tx: Tx, ev: AccessChanged) -> None:
        if not self.indexed(ev.node):
            return
        await tx.search.remove(ev.node.ref)
        if is_public(ev.node):  # re-opened: its posts are searchable again
            async for item in all_items(tx, ev.node):
                await tx.search.index(SearchDoc.of(ev.node.ref, item.item_id, item.publisher, item.published,
                                                   self._codec.summary(item.payload)), new=True)


class SearchService:
    """Answers searches: bounded index queries, every hit re-checked by the visibility rule."""

    def __init__(self, transactions: Transactions, index: SearchIndex) -> None:
        self._tx = transactions
        self._index = index

    async def search(self, actor: Actor, query: str, limit: int = 10, offset: int = 0,
                     by_relevance: bool = False) -> Results:
        """Public posts (local and federated) matching `query`, newest first or by relevance.

        Raises:
            BadRequest, InvalidJid: a malformed query, or an offset past MAX_OFFSET.
        """
        q = parse_query(query, by_relevance)
        limit = max(1, min(limit, 50))
        if not 0 <= offset <= MAX_OFFSET:
            raise errors.BadRequest(f"search results go {MAX_OFFSET} deep; narrow the query instead")
        hits, total = await self._index.search(q, limit, offset, COUNT_CAP)
        found: dict[tuple[NodeRef, str], FoundPost] = {}
        async with self._tx() as tx:
            visible: dict[NodeRef, bool] = {}
            for node, item in await tx.feed.posts(hits):
                if node.ref not in visible:  # T6 at serve time: only what this reader may see right now
                    visible[node.ref] = await self._visible(tx, node, actor)
                if visible[node.ref]:
                    found[(node.ref, item.item_id)] = FoundPost(node.ref, item)
        posts = [found[hit] for hit in hits if hit in found]
        return Results(posts, min(total, COUNT_CAP), total > COUNT_CAP)

    def close(self) -> None:
        self._index.close()

    @staticmethod
    async def _visible(tx: Tx, node: Node, actor: Actor) -> bool:
        return is_public(node) and may_read(node, await viewer_for(tx, node, actor))

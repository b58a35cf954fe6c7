# SPDX-License-Identifier: AGPL-3.0-or-later
"""The archive of a node (XEP-0313 for pubsub): its current items in the order they
took their present form (core layer, stdlib only).

The archive is the items table read another way, so an edit replaces its item
(the new version takes a new, later position) and a retraction removes it.
Positions are the stored rows' ids: a cursor stays meaningful after the item it
named was edited or retracted (the next page starts where it stood), which is
what a replay cursor needs. Who may read it is decided by the one visibility
rule (`NodeMap.readable`, the same answer as an items request); the full-text
filter is `core/search.py`'s query language. On what the search index holds
(the public blogs, the remote caches and, through their originals, the public
timeline's copies) the index answers it; on the rest (comments, attachments,
protected blogs, which must never enter an index other readers search) the
node itself is scanned, at most SCAN_ROWS items per page: a page that reached
that bound without filling up is partial, and its RSM bound is where the
scan stopped, so the next page goes on from there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from . import errors
from .model import Actor, Item, Node, NodeRef
from .ports import EntryCodec
from .pubsub import PubsubService, fitting
from .search import SearchQuery, parse_query
from .transactions import Transactions, Tx
from .visibility import is_public

#: archive ids are decimal row ids; anything longer is no id of ours
MAX_ARCHIVE_ID = 20
#: a full-text page on a node the index does not hold reads at most this many items,
#: in chunks of SCAN_CHUNK, decoding each (bounded work per request on the event loop)
SCAN_ROWS = 1000
SCAN_CHUNK = 200


@dataclass(frozen=True, slots=True)
class ArchiveQuery:
    """A client's request, as the adapter parsed it."""

    start: datetime | None = None   # only items that took their current form at or after
    end: datetime | None = None     # ... and at or before
    text: str = ""                  # full text, core/search.py syntax ('' = no filter)
    after: str | None = None        # RSM: archive ids
    before: str | None = None       # "" asks for the last page
    max: int | None = None


@dataclass(frozen=True, slots=True)
class ArchiveRange:
    """What the repository reads from one node, in position order."""

    start: datetime | None = None
    end: datetime | None = None
    after: int | None = None
    before: int | None = None
    backwards: bool = False         # the page nearest `before` (or the newest), not the oldest
    text: SearchQuery | None = None
    #: the node holds public-timeline copies `user/id` of the posts of `user@copies_of`:
    #: the text filter reads their originals' index entries
    copies_of: str | None = None
    counted: bool = True            # False: no counts (the answer's count and first_index are None)


@dataclass(frozen=True, slots=True)
class ArchiveRows:
    """A repository's answer: rows oldest first, whether more lie beyond them in the
    reading direction, and counts (None past PAGE_COUNT_CAP)."""

    rows: tuple[tuple[int, Item], ...]
    more: bool
    count: int | None
    first_index: int | None
    #: a bounded scan stopped here (a position) before the page filled: the page's RSM bound
    reach: int | None = None


@dataclass(frozen=True, slots=True)
class Archived:
    archive_id: str
    item: Item


@dataclass(frozen=True, slots=True)
class ArchivePage:
    entries: tuple[Archived, ...]   # oldest first
    complete: bool                  # the last page in the reading direction (XEP-0313 §4.3)
    count: int | None
    first_index: int | None
    first: str | None               # RSM bounds: archive ids
    last: str | None


def _position(archive_id: str) -> int:
    """An archive id as a position. Raises ItemNotFound for anything that is no id of ours
    (XEP-0313: an unknown id is item-not-found)."""
    if not (archive_id.isascii() and archive_id.isdigit() and len(archive_id) <= MAX_ARCHIVE_ID):
        raise errors.ItemNotFound("no such id in this archive")
    return int(archive_id)


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else at.astimezone(UTC)


class Archive:
    """Answers archive queries on every node hosted here (blogs, comments, the public timeline)."""

    def __init__(self, transactions: Transactions, pubsub: PubsubService, codec: EntryCodec) -> None:
        self._tx = transactions
        self._pubsub = pubsub
        self._codec = codec
        self.nodes = pubsub.nodes
        self.limits = pubsub.limits

    async def query(self, actor: Actor, ref: NodeRef, query: ArchiveQuery) -> ArchivePage:
        """One page of a node's archive, oldest first, as `actor` may see it now.

        Without RSM the page starts at the oldest matching item; `before` reads
        backwards from an id (or, empty, from the newest). At most `max_page_items`
        items and `max_page_bytes` of entries per page.

        Raises:
            NodeNotFound and the read refusals of `policy.check`: exactly as an items
                request (no existence oracle).
            ItemNotFound: an RSM id that is no id of this archive's.
            BadRequest: a malformed full-text query.
        """
        text = parse_query(query.text) if query.text.strip() else None
        after = _position(query.after) if query.after is not None else None
        before = _position(query.before) if query.before else None
        size = self.limits.max_page_items if query.max is None else max(0, min(query.max, self.limits.max_page_items))
        timeline = ref == self.nodes.timeline_ref
        async with self._tx() as tx:
            node, access, _ = await self.nodes.readable(tx, actor, ref)
            if node is None:
                return ArchivePage((), True, 0, None, None, None)
            # SearchIndexer.indexed: what is public, less comments and attachments; the
            # firehose's posts are a subset of the index's, so it is scanned as it is
            indexed = not ref.of_post and ref != self.nodes.firehose_ref and (timeline or is_public(access))
            rng = ArchiveRange(_utc(query.start), _utc(query.end), after, before, query.before is not None,
                               text if indexed else None, self.nodes.addr.service_jid if timeline else None)
            if text is None or indexed:
                found = await tx.items.archive(node, rng, size)
            else:
                found = await self._scan(tx, node, replace(rng, counted=False), text, size)
            # the public timeline's copies again at serve time, as items requests see them
            kept = set(await self._pubsub.still_visible(tx, node, [item for _, item in found.rows], actor))
        raw = tuple(Archived(str(pos), item) for pos, item in found.rows)
        entries = tuple(e for e in raw if e.item in kept)
        complete = not found.more
        fitted = self._fit(entries, rng.backwards)
        if len(fitted) < len(entries):  # the rest lies further on in the reading direction
            entries, complete = fitted, False
        bounds = [e.archive_id for e in (entries or raw)]  # a page the rule emptied still moves the cursor on
        if found.reach is not None and len(entries) == len(raw):  # the scan's bound, where the next page starts
            bounds = [str(found.reach), *bounds] if rng.backwards else [*bounds, str(found.reach)]
        first_index = found.first_index if entries and raw and entries[0] == raw[0] else None
        return ArchivePage(entries, complete, found.count, first_index,
                           bounds[0] if bounds else None, bounds[-1] if bounds else None)

    async def _scan(self, tx: Tx, node: Node, rng: ArchiveRange, text: SearchQuery, size: int) -> ArchiveRows:
        """A full-text page read from the node itself: its items in the reading direction,
        chunk by chunk, kept when `text` matches their summary, until the page is full, the
        node ends, or SCAN_ROWS items were read (then `reach` is the last one read)."""
        hits: list[tuple[int, Item]] = []
        scanned, more = 0, True
        cursor = rng
        while more and len(hits) < size and scanned < SCAN_ROWS:
            found = await tx.items.archive(node, cursor, min(SCAN_CHUNK, SCAN_ROWS - scanned))
            rows = list(reversed(found.rows)) if rng.backwards else list(found.rows)  # reading order
            more = found.more
            for i, (pos, item) in enumerate(rows):
                if text.matches(self._codec.summary(item.payload), item.publisher):
                    hits.append((pos, item))
                    if len(hits) == size:
                        more = more or i < len(rows) - 1
                        break
            scanned += len(rows)
            if rows:
                edge = rows[-1][0]
                cursor = replace(cursor, before=edge) if rng.backwards else replace(cursor, after=edge)
        reach = None
        if more and len(hits) < size and scanned:  # stopped by the bound, not by a full page
            reach = cursor.before if rng.backwards else cursor.after
        if rng.backwards:
            hits.reverse()
        return ArchiveRows(tuple(hits), more, None, None, reach)

    def _fit(self, entries: tuple[Archived, ...], backwards: bool) -> tuple[Archived, ...]:
        """The entries within the page byte budget: the oldest ones reading forwards, the
        newest ones reading backwards."""
        order = tuple(reversed(entries)) if backwards else entries
        n = fitting([e.item for e in order], self.limits.max_page_bytes)
        kept = order[:n]
        return tuple(reversed(kept)) if backwards else kept

# SPDX-License-Identifier: AGPL-3.0-or-later
"""SQL repositories implementing core.ports (storage layer).

They store and return core.model values; no policy, no trimming rules, no
form parsing. Database failures become core errors here: an IntegrityError
is a Conflict, anything else StorageUnavailable (its traceback is logged, the
requester sees a generic error).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (BigInteger, DateTime, Table, and_, bindparam, delete, exists, func, insert, literal,
                        literal_column, or_, select, update)
from sqlalchemy import text as sql_text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import aliased
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..core import errors
from ..core.archive import ArchiveRange, ArchiveRows
from ..core.model import (
    ATTACHMENTS_PREFIX,
    COMMENTS_PREFIX,
    NS_MICROBLOG,
    PAGE_COUNT_CAP,
    BulkDelivery,
    AccessModel,
    Affiliation,
    Contact,
    Delivery,
    DeliveryTally,
    EventKind,
    Item,
    Node,
    NodeConfig,
    NodeRef,
    OutboxDelivery,
    OutboxEvent,
    Page,
    PageRequest,
    RemoteSub,
    Scope,
    Subscription,
    SubState,
)
from ..core.ports import Clock
from ..core.shards import shard_of
from .engine import serial_lock, upsert
from .search import archive_text_filter
from .search import for_session as search_for_session
from .tables import (
    AffiliationRow,
    BlockRow,
    ContactRow,
    DeliveryCountRow,
    DomainPolicyRow,
    ImUserRow,
    ItemRow,
    NodeRow,
    OutboxEventRow,
    OutboxRow,
    PeerKeyRow,
    RemoteSubscriptionRow,
    ReportRow,
    ServerKeyRow,
    SpamDropRow,
    SubscriptionRow,
    TrackRow,
)

log = logging.getLogger(__name__)


def utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything in the core is aware UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC)


# Prebuilt Core statements for the hot paths (a post, a drained batch, a page of items):
# built once, their compiled form cached, executed with bound values, rows returned as
# plain tuples. Building an ORM statement and loading entities costs ~110 µs per
# statement; a prebuilt one ~35 µs (bench/RESULTS.md, "fixed cost per post").
_N = cast(Table, NodeRow.__table__)
_I = cast(Table, ItemRow.__table__)
_S = cast(Table, SubscriptionRow.__table__)
_A = cast(Table, AffiliationRow.__table__)
_E = cast(Table, OutboxEventRow.__table__)
_O = cast(Table, OutboxRow.__table__)

_NODE_BY_REF = select(_N).where(_N.c.service == bindparam("service"), _N.c.node == bindparam("node"))
#: PostgreSQL: a row lock until the transaction ends; SQLite has none (and needs none: a process's
#: transactions take turns, TaskLock in engine.py)
_NODE_BY_REF_LOCKED = _NODE_BY_REF.with_for_update()
_ITEM_BY_ID = select(_I).where(_I.c.node_id == bindparam("node_id"), _I.c.item_id == bindparam("item_id"))
_ITEM_DELETE = delete(_I).where(_I.c.node_id == bindparam("node_id"), _I.c.item_id == bindparam("item_id"))
_ITEM_INSERT = insert(_I)
_ITEM_CUTOFF = (select(_I.c.id).where(_I.c.node_id == bindparam("node_id"))
                .order_by(_I.c.id.desc()).offset(bindparam("keep")).limit(1))
_ITEM_TRIM = (delete(_I).where(_I.c.node_id == bindparam("node_id"), _I.c.id <= _ITEM_CUTOFF.scalar_subquery())
              .returning(_I.c.item_id))
_ITEMS_NEWEST = (select(_I).where(_I.c.node_id == bindparam("node_id"))
                 .order_by(_I.c.id.desc()).offset(bindparam("offset")).limit(bindparam("size")))
_ITEMS_OLDER = (select(_I).where(_I.c.node_id == bindparam("node_id"), _I.c.id < bindparam("pivot"))
                .order_by(_I.c.id.desc()).limit(bindparam("size")))
_ITEMS_NEWER = (select(_I).where(_I.c.node_id == bindparam("node_id"), _I.c.id > bindparam("pivot"))
                .order_by(_I.c.id.asc()).limit(bindparam("size")))
_ITEM_PK = select(_I.c.id).where(_I.c.node_id == bindparam("node_id"), _I.c.item_id == bindparam("item_id"))
_COUNT_ALL = select(func.count()).select_from(
    select(_I.c.id).where(_I.c.node_id == bindparam("node_id")).limit(PAGE_COUNT_CAP + 1).subquery())
_COUNT_NEWER = select(func.count()).select_from(
    select(_I.c.id).where(_I.c.node_id == bindparam("node_id"), _I.c.id > bindparam("pivot"))
    .limit(PAGE_COUNT_CAP + 1).subquery())
_AFFILIATION = select(_A.c.affiliation).where(_A.c.node_id == bindparam("node_id"), _A.c.jid == bindparam("jid"))
_DELIVERABLE = (select(_S.c.jid, _S.c.delivery)
                .where(_S.c.node_id == bindparam("node_id"), _S.c.state == SubState.SUBSCRIBED.value,
                       ~exists().where(_A.c.node_id == bindparam("access_id"), _A.c.jid == _S.c.bare,
                                       _A.c.affiliation == Affiliation.OUTCAST.value))
                .order_by(_S.c.id))
_TRACKERS = (select(TrackRow.__table__.c.jid, TrackRow.__table__.c.word)
             .where(TrackRow.__table__.c.word.in_(bindparam("words", expanding=True)))
             .order_by(TrackRow.__table__.c.id))
_BLOCKERS = select(BlockRow.__table__.c.jid).where(BlockRow.__table__.c.blocked == bindparam("author"))
_BLOCKERS_AMONG = _BLOCKERS.where(BlockRow.__table__.c.jid.in_(bindparam("among", expanding=True)))
_EVENT_INSERT = insert(_E).returning(_E.c.id)
_OUTBOX_INSERT = insert(_O)
_DUE_BULK = (select(_E.c.id, _E.c.kind, _E.c.sender, _E.c.node, _E.c.item_id, _E.c.payload, _E.c.publisher,
                    _E.c.subject, _E.c.state, _E.c.recipients, _E.c.created_at)
             .where(_E.c.next_at <= bindparam("at")).order_by(_E.c.id).limit(bindparam("limit")))
_EVENTS_HANDED = (update(_E).where(_E.c.id.in_(bindparam("ids", expanding=True)))
                  .values(recipients=None, next_at=None))
_EVENTS_FINISHED = delete(_E).where(_E.c.id.in_(bindparam("ids", expanding=True)),
                                    ~exists().where(_O.c.event_id == _E.c.id))
_DELIVERY_COLS = (_O.c.id, _O.c.recipient, _O.c.attempts, _E.c.id.label("event_id"), _E.c.kind, _E.c.sender,
                  _E.c.node, _E.c.item_id, _E.c.payload, _E.c.publisher, _E.c.subject, _E.c.state,
                  _E.c.created_at)
_DUE = (select(*_DELIVERY_COLS).join_from(_O, _E, _E.c.id == _O.c.event_id)
        .where(_O.c.next_at <= bindparam("at"), _O.c.sent_at.is_(None)).order_by(_O.c.id).limit(bindparam("limit")))
#: the same, of some outbox shards only (a worker of a cluster). The shards are bound as one
#: 64-bit mask, not as a list: an expanding IN of up to 64 values is rendered again at every
#: execution, which cost about a tenth of a worker's CPU per post in bench/profile_publish.
_IN_SHARDS = literal(1, BigInteger).op("<<")(_E.c.shard).op("&")(bindparam("shards", type_=BigInteger)) != 0
_DUE_BULK_OF = _DUE_BULK.where(_IN_SHARDS)
_DUE_OF = _DUE.where(_IN_SHARDS)
#: is anything due in these shards? (a cluster worker's idle poll: one cheap statement)
_ANY_DUE_OF = select(exists().where(_E.c.next_at <= bindparam("at"), _IN_SHARDS) | exists().where(
    _O.c.next_at <= bindparam("at"), _O.c.sent_at.is_(None), _O.c.event_id == _E.c.id, _IN_SHARDS))


def _shard_mask(shards: frozenset[int]) -> int:
    """`shards` as the signed 64-bit mask `_IN_SHARDS` binds (bit n: shard n)."""
    mask = sum(1 << s for s in shards)
    return mask - (1 << 64) if mask >= 1 << 63 else mask
_DELIVERY_BY_ID = select(*_DELIVERY_COLS).join_from(_O, _E, _E.c.id == _O.c.event_id).where(
    _O.c.id == bindparam("row_id"))


#: the notifications whose outcome counts for a post's `status` (the rest count per server only)
_POST_KINDS = (EventKind.ITEM_PUBLISHED.value, EventKind.IM_POST.value)
_D = cast(Table, DeliveryCountRow.__table__)
_DROPS = cast(Table, SpamDropRow.__table__)
_D_KEY = ["sender", "node", "item_id", "server"]
_RECIPIENTS = func.length(_E.c.recipients) - func.length(func.replace(_E.c.recipients, "\n", "")) + 1
#: the local recipients of post events, counted as delivered when handed over (one statement per batch)
_HANDED_COUNTS = (select(_E.c.sender, _E.c.node, _E.c.item_id, literal(""), func.sum(_RECIPIENTS), literal(0),
                         bindparam("at", type_=DateTime(timezone=True)))
                  .where(_E.c.id.in_(bindparam("ids", expanding=True)), _E.c.kind.in_(_POST_KINDS),
                         _E.c.item_id.is_not(None), _E.c.recipients.is_not(None))
                  .group_by(_E.c.sender, _E.c.node, _E.c.item_id))
_ROWS_FORGOTTEN = (select(_O.c.id, _O.c.event_id, _O.c.recipient, _E.c.kind, _E.c.sender, _E.c.node, _E.c.item_id)
                   .join_from(_O, _E, _E.c.id == _O.c.event_id).where(_O.c.id.in_(bindparam("ids", expanding=True))))


def server_of(recipient: str) -> str:
    """The domain of a recipient JID: whose server a notification went to."""
    return recipient.split("/", 1)[0].rpartition("@")[2]


def _count_statements(dialect: str) -> tuple[Any, Any]:
    """(add counted rows, add the handed local recipients of post events): both add to a row that
    exists (INSERT … ON CONFLICT DO UPDATE, in SQLite's and PostgreSQL's own dialects)."""
    found = _COUNTS.get(dialect)
    if found is None:
        ins = upsert(dialect, _D)
        add = {"delivered": _D.c.delivered + ins.excluded.delivered, "failed": _D.c.failed + ins.excluded.failed}
        rows = ins.on_conflict_do_update(index_elements=_D_KEY, set_=add)
        handed = ins.from_select(_D_KEY + ["delivered", "failed", "created_at"], _HANDED_COUNTS) \
            .on_conflict_do_update(index_elements=_D_KEY, set_=add)
        found = _COUNTS[dialect] = (rows, handed)
    return found


_COUNTS: dict[str, tuple[Any, Any]] = {}


_POSTS = (select(NodeRow, ItemRow).join(ItemRow, ItemRow.node_id == NodeRow.id)
          .where(ItemRow.item_id.in_(bindparam("ids", expanding=True)),
                 NodeRow.service.in_(bindparam("services", expanding=True))))


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern for ids starting with `prefix`: item ids are data, so LIKE's
    metacharacters in them are escaped (T12)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


#: items in store order (a republish gets a new row id) with their nodes: the stream of posts
#: and the network timeline (core/stream.py, core/network.py); the primary key orders and
#: bounds the scan
_STORED = (select(_I.c.id.label("position"), _I.c.item_id, _I.c.publisher, _I.c.payload, _I.c.published,
                  _I.c.updated, _N.c.id, _N.c.service, _N.c.node, _N.c.owner, _N.c.access_model,
                  _N.c.max_items, _N.c.notify_retract, _N.c.title, _N.c.discoverable,
                  _N.c.consent_withdrawn_at, _N.c.remote)
           .join_from(_I, _N, _N.c.id == _I.c.node_id)
           .where(_I.c.updated >= bindparam("since"), _N.c.node.in_(bindparam("names", expanding=True)))
           .limit(bindparam("limit")))
_STORED_AFTER = _STORED.where(_I.c.id > bindparam("after")).order_by(_I.c.id)
_STORED_NEWEST = _STORED.order_by(_I.c.id.desc())
_STORED_BEFORE = _STORED_NEWEST.where(_I.c.id < bindparam("before"))


def _node(row: Any) -> Node:
    config = NodeConfig(AccessModel(row.access_model), row.max_items, row.notify_retract, row.title,
                        row.discoverable, utc(row.consent_withdrawn_at) if row.consent_withdrawn_at else None)
    return Node(NodeRef(row.service, row.node), row.owner, config, row.id, bool(row.remote))


def _item(row: Any) -> Item:
    return Item(row.item_id, row.publisher, row.payload, utc(row.published), utc(row.updated))


class NodeRepo:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def get(self, ref: NodeRef) -> Node | None:
        row = (await self.s.execute(_NODE_BY_REF, {"service": ref.service, "node": ref.node})).first()
        return _node(row) if row else None

    async def get_locked(self, ref: NodeRef) -> Node | None:
        """`get`, the row locked until the transaction ends (SELECT … FOR UPDATE)."""
        row = (await self.s.execute(_NODE_BY_REF_LOCKED, {"service": ref.service, "node": ref.node})).first()
        return _node(row) if row else None

    async def create(self, node: Node) -> Node:
        c = node.config
        row = NodeRow(service=node.ref.service, node=node.ref.node, owner=node.owner,
                      access_model=c.access_model.value, max_items=c.max_items,
                      notify_retract=c.notify_retract, title=c.title, created_at=now(), remote=node.remote,
                      discoverable=c.discoverable, consent_withdrawn_at=c.consent_withdrawn_at)
        self.s.add(row)
        await self.s.flush()
        return _node(row)

    async def update(self, node: Node) -> None:
        c = node.config
        await self.s.execute(update(NodeRow).where(NodeRow.id == node.db_id).values(
            access_model=c.access_model.value, max_items=c.max_items,
            notify_retract=c.notify_retract, title=c.title, discoverable=c.discoverable,
            consent_withdrawn_at=c.consent_withdrawn_at))

    async def delete(self, node: Node) -> None:
        # Explicit child deletes: no reliance on ON DELETE CASCADE being enabled.
        for table in (ItemRow, SubscriptionRow, AffiliationRow):
            await self.s.execute(delete(table).where(table.node_id == node.db_id))
        await self.s.execute(delete(NodeRow).where(NodeRow.id == node.db_id))

    async def list(self, service: str) -> Sequence[Node]:
        rows = (await self.s.execute(select(NodeRow).where(NodeRow.service == service)
                                     .order_by(NodeRow.id))).scalars()
        return [_node(r) for r in rows]


class ItemRepo:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def quoting(self, uri_prefix: str, node: str) -> Sequence[tuple[NodeRef, str]]:
        """(node, item id) of the items on nodes named `node` whose entry contains `uri_prefix`
        (reposts link what they repost): a scan, for the rare account deletion only."""
        rows = (await self.s.execute(
            select(NodeRow.service, NodeRow.node, ItemRow.item_id).join(NodeRow, NodeRow.id == ItemRow.node_id)
            .where(NodeRow.node == node, ItemRow.payload.contains(uri_prefix, autoescape=True))
            .order_by(ItemRow.id))).all()
        return [(NodeRef(s, n), i) for s, n, i in rows]

    async def get(self, node: Node, item_id: str) -> Item | None:
        row = (await self.s.execute(_ITEM_BY_ID, {"node_id": node.db_id, "item_id": item_id})).first()
        return _item(row) if row else None

    async def get_many(self, node: Node, item_ids: Sequence[str]) -> Sequence[Item]:
        rows = (await self.s.execute(select(ItemRow).where(
            ItemRow.node_id == node.db_id, ItemRow.item_id.in_(list(item_ids)))
            .order_by(ItemRow.id.desc()))).scalars()
        return [_item(r) for r in rows]

    async def put(self, node: Node, item: Item, new: bool = False) -> None:
        # A republish moves the item to the top: delete and insert gives it a new,
        # higher id, and id order is publish order. `new`: the caller knows there is none.
        if not new:
            await self.s.execute(_ITEM_DELETE, {"node_id": node.db_id, "item_id": item.item_id})
        await self.s.execute(_ITEM_INSERT, {"node_id": node.db_id, "item_id": item.item_id,
                                            "publisher": item.publisher, "payload": item.payload,
                                            "published": item.published, "updated": item.updated})

    async def delete(self, node: Node, item_id: str) -> bool:
        res = await self.s.execute(delete(ItemRow).where(
            ItemRow.node_id == node.db_id, ItemRow.item_id == item_id))
        return bool(res.rowcount)

    async def purge(self, node: Node) -> int:
        res = await self.s.execute(delete(ItemRow).where(ItemRow.node_id == node.db_id))
        return int(res.rowcount or 0)

    async def trim(self, node: Node, keep: int) -> Sequence[str]:
        # One statement: a full node (the public timeline always is) trims on every post.
        return list((await self.s.execute(_ITEM_TRIM, {"node_id": node.db_id, "keep": keep})).scalars())

    async def stored_after(self, position: int, since: datetime, limit: int, node_names: Sequence[str]
                           ) -> Sequence[tuple[int, Node, Item]]:
        rows = (await self.s.execute(_STORED_AFTER, {"after": position, "since": since, "limit": limit,
                                                     "names": list(node_names)})).all()
        return [(r.position, _node(r), _item(r)) for r in rows]

    async def last_position(self) -> int:
        return int((await self.s.execute(select(func.max(_I.c.id)))).scalar() or 0)

    async def stored_before(self, position: int | None, since: datetime, limit: int, node_names: Sequence[str]
                            ) -> Sequence[tuple[int, Node, Item]]:
        params: dict[str, Any] = {"since": since, "limit": limit, "names": list(node_names)}
        if position is not None:
            params["before"] = position
        rows = (await self.s.execute(_STORED_BEFORE if position is not None else _STORED_NEWEST, params)).all()
        return [(r.position, _node(r), _item(r)) for r in rows]

    async def authors_on(self, node_name: str) -> Sequence[tuple[str, str, int, datetime]]:
        rows = (await self.s.execute(
            select(_N.c.service, _I.c.publisher, func.count(), func.max(_I.c.updated))
            .join_from(_I, _N, _N.c.id == _I.c.node_id)
            .where(_N.c.node == node_name, _N.c.remote.is_(True))
            .group_by(_N.c.service, _I.c.publisher))).all()
        return [(sv, pub, int(n), utc(latest)) for sv, pub, n, latest in rows]

    async def ids_with_prefix(self, node: Node, prefix: str) -> Sequence[str]:
        pattern = _like_prefix(prefix)
        return list((await self.s.execute(select(ItemRow.item_id).where(
            ItemRow.node_id == node.db_id, ItemRow.item_id.like(pattern, escape="\\")))).scalars())

    async def ids_published_by(self, node: Node, publisher: str) -> Sequence[str]:
        return list((await self.s.execute(select(ItemRow.item_id).where(
            ItemRow.node_id == node.db_id, ItemRow.publisher == publisher))).scalars())

    async def ids_oldest_first(self, node: Node) -> Sequence[str]:
        return list((await self.s.execute(select(ItemRow.item_id).where(ItemRow.node_id == node.db_id)
                                          .order_by(ItemRow.id))).scalars())

    async def _pivot(self, node: Node, item_id: str) -> int:
        pk = (await self.s.execute(_ITEM_PK, {"node_id": node.db_id, "item_id": item_id})).scalar_one_or_none()
        if pk is None:
            raise errors.ItemNotFound(f"no item {item_id} on this node (RSM)")
        return int(pk)

    async def _count(self, node: Node, newer_than: int | None = None) -> int | None:
        """Items of the node (newer than an item's pk), or None beyond PAGE_COUNT_CAP: counting
        100,000 index entries per page is what makes a page slow (XEP-0059 makes <count/>
        and index optional)."""
        if newer_than is None:
            n = (await self.s.execute(_COUNT_ALL, {"node_id": node.db_id})).scalar_one()
        else:
            n = (await self.s.execute(_COUNT_NEWER, {"node_id": node.db_id, "pivot": newer_than})).scalar_one()
        return None if n > PAGE_COUNT_CAP else int(n)

    async def page(self, node: Node, req: PageRequest, limit: int) -> Page:
        count = await self._count(node)
        size = limit if req.max is None else max(0, min(req.max, limit))
        if size == 0:
            return Page((), count, None, complete=count == 0)  # count None: not complete either
        if req.after is not None:
            pivot = await self._pivot(node, req.after)
            rows = (await self.s.execute(_ITEMS_OLDER, {"node_id": node.db_id, "pivot": pivot, "size": size})).all()
        elif req.before is not None:
            pivot = await self._pivot(node, req.before) if req.before else 0
            rows = list(reversed((await self.s.execute(
                _ITEMS_NEWER, {"node_id": node.db_id, "pivot": pivot, "size": size})).all()))
        else:
            rows = (await self.s.execute(_ITEMS_NEWEST, {"node_id": node.db_id, "offset": req.index or 0,
                                                         "size": size})).all()
        first_index = None
        if rows and (req.after is not None or req.before is not None):
            first_index = await self._count(node, newer_than=rows[0].id)
        elif rows:
            first_index = req.index or 0  # the offset asked for: no second count
        return Page(tuple(_item(r) for r in rows), count, first_index, complete=len(rows) == count)

    async def archive(self, node: Node, rng: ArchiveRange, size: int) -> ArchiveRows:
        """At most `size` items of a node in position (row id) order, filtered by time (when
        they took their current form) and full text (through the search index), oldest first:
        the page after `after`, before `before`, or (`backwards`) the newest one. Counts stop
        at PAGE_COUNT_CAP. The node holds at most max_items_per_node rows, which bounds the scan."""
        conds: list[Any] = [_I.c.node_id == node.db_id]
        if rng.start is not None:
            conds.append(_I.c.updated >= rng.start)
        if rng.end is not None:
            conds.append(_I.c.updated <= rng.end)
        if rng.text is not None:
            params: dict[str, Any] = {}
            where = archive_text_filter(self.s.bind.dialect.name, rng.text, "items.item_id", params,
                                        node.ref, rng.copies_of)
            conds.append(sql_text(where).bindparams(**params))
        page = list(conds)
        if rng.after is not None:
            page.append(_I.c.id > rng.after)
        if rng.before is not None:
            page.append(_I.c.id < rng.before)
        order = _I.c.id.desc() if rng.backwards else _I.c.id.asc()
        rows = list((await self.s.execute(select(_I).where(*page).order_by(order).limit(size + 1))).all())
        more = len(rows) > size
        rows = rows[:size]
        if rng.backwards:
            rows.reverse()
        if not rng.counted:
            return ArchiveRows(tuple((int(r.id), _item(r)) for r in rows), more, None, None)
        count = await self._capped(conds)
        first_index = await self._capped([*conds, _I.c.id < rows[0].id]) if rows else None
        return ArchiveRows(tuple((int(r.id), _item(r)) for r in rows), more, count, first_index)

    async def _capped(self, conds: list[Any]) -> int | None:
        n = (await self.s.execute(select(func.count()).select_from(
            select(_I.c.id).where(*conds).limit(PAGE_COUNT_CAP + 1).subquery()))).scalar_one()
        return None if n > PAGE_COUNT_CAP else int(n)


class SubscriptionRepo:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    @staticmethod
    def _sub(ref: NodeRef, row: SubscriptionRow) -> Subscription:
        return Subscription(ref, row.jid, SubState(row.state), Delivery(row.delivery))

    async def get(self, node: Node, jid: str) -> Subscription | None:
        row = (await self.s.execute(select(SubscriptionRow).where(
            SubscriptionRow.node_id == node.db_id, SubscriptionRow.jid == jid))).scalar_one_or_none()
        return self._sub(node.ref, row) if row else None

    async def state_of(self, node: Node, bare: str) -> SubState:
        states = set((await self.s.execute(select(SubscriptionRow.state).where(
            SubscriptionRow.node_id == node.db_id, SubscriptionRow.bare == bare))).scalars())
        for s in (SubState.SUBSCRIBED, SubState.PENDING):
            if s.value in states:
                return s
        return SubState.NONE

    async def put(self, node: Node, jid: str, state: SubState, delivery: Delivery | None = None) -> None:
        values: dict[str, str] = {"state": state.value}
        if delivery is not None:
            values["delivery"] = delivery.value
        res = await self.s.execute(update(SubscriptionRow).where(
            SubscriptionRow.node_id == node.db_id, SubscriptionRow.jid == jid).values(**values))
        if not res.rowcount:
            self.s.add(SubscriptionRow(node_id=node.db_id, jid=jid, bare=jid.split("/", 1)[0],
                                       state=state.value, delivery=(delivery or Delivery.EVENT).value,
                                       created_at=now()))
            await self.s.flush()

    async def delete(self, node: Node, jid: str) -> bool:
        res = await self.s.execute(delete(SubscriptionRow).where(
            SubscriptionRow.node_id == node.db_id, SubscriptionRow.jid == jid))
        return bool(res.rowcount)

    async def count(self, node: Node, state: SubState) -> int:
        return int((await self.s.execute(select(func.count()).select_from(SubscriptionRow).where(
            SubscriptionRow.node_id == node.db_id, SubscriptionRow.state == state.value))).scalar_one())

    async def for_node(self, node: Node, state: SubState | None = None) -> Sequence[Subscription]:
        q = select(SubscriptionRow).where(SubscriptionRow.node_id == node.db_id)
        if state is not None:
            q = q.where(SubscriptionRow.state == state.value)
        rows = (await self.s.execute(q.order_by(SubscriptionRow.id))).scalars()
        return [self._sub(node.ref, r) for r in rows]

    async def deliverable(self, node: Node, access: Node) -> Sequence[tuple[str, Delivery]]:
        """Subscribed JIDs of `node` whose bare JID is not an outcast of `access`, in one query."""
        rows = (await self.s.execute(_DELIVERABLE, {"node_id": node.db_id, "access_id": access.db_id})).all()
        return [(j, Delivery(d)) for j, d in rows]

    async def for_jid(self, service: str, jid: str) -> Sequence[Subscription]:
        rows = (await self.s.execute(
            select(NodeRow.node, SubscriptionRow.jid, SubscriptionRow.state)
            .join(NodeRow, NodeRow.id == SubscriptionRow.node_id)
            .where(NodeRow.service == service, SubscriptionRow.bare == jid)
            .order_by(SubscriptionRow.id))).all()
        return [Subscription(NodeRef(service, n), j, SubState(st)) for n, j, st in rows]

    async def add_failure(self, node: Node, jid: str) -> int:
        await self.s.execute(update(SubscriptionRow).where(
            SubscriptionRow.node_id == node.db_id, SubscriptionRow.jid == jid)
            .values(failures=SubscriptionRow.failures + 1))
        v = (await self.s.execute(select(SubscriptionRow.failures).where(
            SubscriptionRow.node_id == node.db_id, SubscriptionRow.jid == jid))).scalar_one_or_none()
        return int(v or 0)

    async def following(self, bare: str) -> Sequence[Subscription]:
        rows = (await self.s.execute(
            select(NodeRow.service, NodeRow.node, SubscriptionRow.jid, SubscriptionRow.state,
                   SubscriptionRow.delivery)
            .join(NodeRow, NodeRow.id == SubscriptionRow.node_id)
            .where(SubscriptionRow.bare == bare).order_by(SubscriptionRow.id))).all()
        return [Subscription(NodeRef(sv, n), j, SubState(st), Delivery(d)) for sv, n, j, st, d in rows]


class AffiliationRepo:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def get(self, node: Node, jid: str) -> Affiliation:
        v = (await self.s.execute(_AFFILIATION, {"node_id": node.db_id, "jid": jid})).scalar_one_or_none()
        return Affiliation(v) if v else Affiliation.NONE

    async def set(self, node: Node, jid: str, affiliation: Affiliation) -> None:
        await self.s.execute(delete(AffiliationRow).where(
            AffiliationRow.node_id == node.db_id, AffiliationRow.jid == jid))
        if affiliation is not Affiliation.NONE:
            self.s.add(AffiliationRow(node_id=node.db_id, jid=jid, affiliation=affiliation.value))
            await self.s.flush()

    async def for_node(self, node: Node) -> dict[str, Affiliation]:
        rows = (await self.s.execute(select(AffiliationRow.jid, AffiliationRow.affiliation).where(
            AffiliationRow.node_id == node.db_id).order_by(AffiliationRow.id))).all()
        return {j: Affiliation(a) for j, a in rows}

    async def for_jid(self, service: str, jid: str) -> Sequence[tuple[NodeRef, Affiliation]]:
        rows = (await self.s.execute(
            select(NodeRow.node, AffiliationRow.affiliation)
            .join(NodeRow, NodeRow.id == AffiliationRow.node_id)
            .where(NodeRow.service == service, AffiliationRow.jid == jid))).all()
        return [(NodeRef(service, n), Affiliation(a)) for n, a in rows]

    async def everywhere(self, jid: str) -> Sequence[tuple[NodeRef, Affiliation]]:
        rows = (await self.s.execute(
            select(NodeRow.service, NodeRow.node, AffiliationRow.affiliation)
            .join(NodeRow, NodeRow.id == AffiliationRow.node_id)
            .where(AffiliationRow.jid == jid).order_by(AffiliationRow.id))).all()
        return [(NodeRef(s, n), Affiliation(a)) for s, n, a in rows]


class ContactRepo:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def has_presence(self, blog: str, contact: str) -> bool:
        return bool((await self.s.execute(select(exists().where(
            ContactRow.blog == blog, ContactRow.contact == contact, ContactRow.subscribed)))).scalar())

    async def of_blog(self, blog: str) -> Sequence[Contact]:
        return await self._where(ContactRow.blog == blog)

    async def wanted(self, contact: str) -> bool:
        return bool((await self.s.execute(select(exists().where(
            ContactRow.contact == contact, ContactRow.sub_to | ContactRow.pending_out)))).scalar())

    async def get(self, blog: str, contact: str) -> Contact:
        row = (await self.s.execute(select(ContactRow).where(
            ContactRow.blog == blog, ContactRow.contact == contact))).scalar_one_or_none()
        if row is None:
            return Contact(blog, contact)
        return Contact(blog, contact, row.subscribed, row.sub_to, row.pending_in, row.pending_out)

    async def save(self, c: Contact) -> None:
        values = {"subscribed": c.subscribed, "sub_to": c.sub_to, "pending_in": c.pending_in,
                  "pending_out": c.pending_out}
        res = await self.s.execute(update(ContactRow).where(
            ContactRow.blog == c.blog, ContactRow.contact == c.contact).values(**values))
        if not res.rowcount:
            self.s.add(ContactRow(blog=c.blog, contact=c.contact, **values))
            await self.s.flush()

    async def with_presence_to(self) -> Sequence[Contact]:
        return await self._where(ContactRow.sub_to)

    async def with_presence_from(self) -> Sequence[Contact]:
        return await self._where(ContactRow.subscribed)

    async def of_contact(self, contact: str) -> Sequence[Contact]:
        return await self._where(ContactRow.contact == contact)

    async def forget(self, blog: str, contact: str) -> None:
        await self.s.execute(delete(ContactRow).where(or_(ContactRow.blog == blog, ContactRow.contact == contact)))

    async def _where(self, cond: Any) -> Sequence[Contact]:
        rows = (await self.s.execute(select(ContactRow).where(cond).order_by(ContactRow.id))).scalars()
        return [Contact(r.blog, r.contact, r.subscribed, r.sub_to, r.pending_in, r.pending_out) for r in rows]


class ImRepo:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def paused(self, jids: Sequence[str]) -> set[str]:
        if not jids:
            return set()
        return set((await self.s.execute(select(ImUserRow.jid).where(
            ImUserRow.jid.in_(list(jids)), ImUserRow.paused))).scalars())

    async def set_paused(self, jid: str, paused: bool) -> None:
        res = await self.s.execute(update(ImUserRow).where(ImUserRow.jid == jid).values(paused=paused))
        if not res.rowcount:
            self.s.add(ImUserRow(jid=jid, paused=paused))
            await self.s.flush()

    async def track(self, jid: str, word: str) -> bool:
        if (await self.s.execute(select(TrackRow.id).where(
                TrackRow.jid == jid, TrackRow.word == word))).first():
            return False
        self.s.add(TrackRow(jid=jid, word=word))
        await self.s.flush()
        return True

    async def untrack(self, jid: str, word: str) -> bool:
        res = await self.s.execute(delete(TrackRow).where(TrackRow.jid == jid, TrackRow.word == word))
        return bool(res.rowcount)

    async def tracked(self, jid: str) -> Sequence[str]:
        return list((await self.s.execute(select(TrackRow.word).where(TrackRow.jid == jid)
                                          .order_by(TrackRow.word))).scalars())

    async def trackers(self, words: Sequence[str]) -> Sequence[tuple[str, str]]:
        if not words:
            return []
        rows = (await self.s.execute(_TRACKERS, {"words": list(words)})).all()
        return [(j, w) for j, w in rows]

    async def block(self, jid: str, blocked: str) -> bool:
        if (await self.s.execute(select(BlockRow.id).where(
                BlockRow.jid == jid, BlockRow.blocked == blocked))).first():
            return False
        self.s.add(BlockRow(jid=jid, blocked=blocked))
        await self.s.flush()
        return True

    async def unblock(self, jid: str, blocked: str) -> bool:
        res = await self.s.execute(delete(BlockRow).where(BlockRow.jid == jid, BlockRow.blocked == blocked))
        return bool(res.rowcount)

    async def blocked(self, jid: str) -> Sequence[str]:
        return list((await self.s.execute(select(BlockRow.blocked).where(BlockRow.jid == jid)
                                          .order_by(BlockRow.blocked))).scalars())

    async def blockers_of(self, author: str, among: Sequence[str] | None = None) -> set[str]:
        if among is None:
            return set((await self.s.execute(_BLOCKERS, {"author": author})).scalars())
        if not among:
            return set()
        return set((await self.s.execute(_BLOCKERS_AMONG, {"author": author, "among": list(among)})).scalars())

    async def forget(self, jid: str) -> None:
        for row in (ImUserRow, TrackRow, BlockRow):
            await self.s.execute(delete(row).where(row.jid == jid))


class RemoteRepo:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    @staticmethod
    def _sub(r: RemoteSubscriptionRow) -> RemoteSub:
        return RemoteSub(r.service, r.node, r.subscriber, SubState(r.state))

    async def get(self, service: str, node: str, subscriber: str) -> RemoteSub | None:
        r = (await self.s.execute(select(RemoteSubscriptionRow).where(
            RemoteSubscriptionRow.service == service, RemoteSubscriptionRow.node == node,
            RemoteSubscriptionRow.subscriber == subscriber))).scalar_one_or_none()
        return self._sub(r) if r else None

    async def put(self, sub: RemoteSub) -> None:
        res = await self.s.execute(update(RemoteSubscriptionRow).where(
            RemoteSubscriptionRow.service == sub.service, RemoteSubscriptionRow.node == sub.node,
            RemoteSubscriptionRow.subscriber == sub.subscriber).values(state=sub.state.value, checked_at=now()))
        if not res.rowcount:
            self.s.add(RemoteSubscriptionRow(service=sub.service, node=sub.node, subscriber=sub.subscriber,
                                             state=sub.state.value, created_at=now()))
            await self.s.flush()

    async def delete(self, service: str, node: str, subscriber: str) -> bool:
        res = await self.s.execute(delete(RemoteSubscriptionRow).where(
            RemoteSubscriptionRow.service == service, RemoteSubscriptionRow.node == node,
            RemoteSubscriptionRow.subscriber == subscriber))
        return bool(res.rowcount)

    async def all(self) -> Sequence[RemoteSub]:
        rows = (await self.s.execute(select(RemoteSubscriptionRow).order_by(RemoteSubscriptionRow.id))).scalars()
        return [self._sub(r) for r in rows]

    async def consented(self, service: str, node: str) -> bool:
        return bool((await self.s.execute(select(exists().where(
            RemoteSubscriptionRow.service == service, RemoteSubscriptionRow.node == node,
            RemoteSubscriptionRow.state.in_([SubState.SUBSCRIBED.value, SubState.PENDING.value]))))).scalar())


class StatsRepo:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def add_drops(self, counts: dict[tuple[str, str], int], at: datetime) -> None:
        """Add to the drop counters, creating those seen for the first time.

        One upsert per counter: workers of a cluster flush the same first (reason, domain)
        at once, and an UPDATE-then-INSERT made the second one's flush fail as a whole.
        """
        if not counts:
            return
        ins = upsert(self.s.bind.dialect.name, _DROPS)
        # in one order on every worker: two flushes locking the same rows never deadlock
        await self.s.execute(
            ins.on_conflict_do_update(index_elements=["reason", "domain"],
                                      set_={"count": _DROPS.c.count + ins.excluded.count,
                                            "last_at": ins.excluded.last_at}),
            [{"reason": reason, "domain": domain, "count": n, "last_at": at}
             for (reason, domain), n in sorted(counts.items())])

    async def drops(self) -> Sequence[tuple[str, str, int, datetime]]:
        rows = (await self.s.execute(select(SpamDropRow).order_by(
            SpamDropRow.count.desc(), SpamDropRow.reason, SpamDropRow.domain))).scalars()
        return [(r.reason, r.domain, int(r.count), utc(r.last_at)) for r in rows]

    async def domain_policies(self) -> Sequence[tuple[str, str]]:
        rows = (await self.s.execute(select(DomainPolicyRow.domain, DomainPolicyRow.policy)
                                     .order_by(DomainPolicyRow.domain))).all()
        return [(d, p) for d, p in rows]

    async def set_domain_policy(self, domain: str, policy: str, on: bool, by: str, at: datetime) -> bool:
        exists_ = (await self.s.execute(select(DomainPolicyRow.id).where(
            DomainPolicyRow.domain == domain, DomainPolicyRow.policy == policy))).first() is not None
        if on and not exists_:
            self.s.add(DomainPolicyRow(domain=domain, policy=policy, created_by=by, created_at=at))
            await self.s.flush()
            return True
        if not on and exists_:
            await self.s.execute(delete(DomainPolicyRow).where(
                DomainPolicyRow.domain == domain, DomainPolicyRow.policy == policy))
            return True
        return False

    async def add_report(self, reporter: str, target: str, reason: str, text: str, at: datetime) -> None:
        self.s.add(ReportRow(reporter=reporter, target=target, reason=reason, text=text, created_at=at))
        await self.s.flush()

    async def reports(self, limit: int) -> Sequence[tuple[str, str, str, str, datetime]]:
        rows = (await self.s.execute(select(ReportRow).order_by(ReportRow.id.desc()).limit(limit))).scalars()
        return [(r.reporter, r.target, r.reason, r.text, utc(r.created_at)) for r in rows]

    async def report_counts(self, limit: int) -> Sequence[tuple[str, int, int, datetime]]:
        rows = (await self.s.execute(
            select(ReportRow.reporter, func.count(), func.count(func.distinct(ReportRow.target)),
                   func.max(ReportRow.created_at))
            .group_by(ReportRow.reporter).order_by(func.max(ReportRow.id).desc()).limit(limit))).all()
        return [(r, int(n), int(t), utc(at)) for r, n, t, at in rows]


#: the advisory lock under which the first signing key is made (workers starting together)
KEYS_LOCK = int.from_bytes(b"xbkeys:1", "big") & 0x7FFFFFFFFFFFFFFF
_NEWEST_KEY = select(ServerKeyRow.key_id).order_by(ServerKeyRow.id.desc()).limit(1)


class KeyRepo:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def all(self) -> Sequence[tuple[str, str, str, bool, datetime]]:
        rows = (await self.s.execute(select(ServerKeyRow).order_by(ServerKeyRow.id))).scalars()
        return [(r.key_id, r.private_key, r.public_key, r.active, utc(r.created_at)) for r in rows]

    async def add(self, key_id: str, private_key: str, public_key: str, at: datetime) -> None:
        """Store a new key and mark it the only active (newest) one."""
        await self.s.execute(update(ServerKeyRow).values(active=False))
        self.s.add(ServerKeyRow(key_id=key_id, private_key=private_key, public_key=public_key,
                                active=True, created_at=at))
        await self.s.flush()

    async def newest(self) -> str | None:
        return (await self.s.execute(_NEWEST_KEY)).scalar_one_or_none()

    async def lock(self) -> None:
        # PostgreSQL: a transaction-level advisory lock, released by commit or rollback (it works
        # through PgBouncer's transaction pooling, a session lock would not). SQLite: one
        # process's transactions take turns already (TaskLock in engine.py).
        if self.s.bind.dialect.name == "postgresql":
            await self.s.execute(sql_text("SELECT pg_advisory_xact_lock(:k)"), {"k": KEYS_LOCK})


class PeerKeyRepo:
    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def get(self, domain: str) -> dict[str, bytes] | None:
        rows = (await self.s.execute(select(PeerKeyRow.key_id, PeerKeyRow.public_key)
                                     .where(PeerKeyRow.domain == domain))).all()
        return {k: base64.b64decode(v) for k, v in rows} if rows else None

    async def pin(self, domain: str, keys: dict[str, bytes], at: datetime) -> None:
        """Remember these keys of `domain` (added to those already pinned)."""
        known = await self.get(domain) or {}
        for key_id, raw in keys.items():
            if key_id not in known:
                self.s.add(PeerKeyRow(domain=domain, key_id=key_id, public_key=base64.b64encode(raw).decode(),
                                      pinned_at=at))
        await self.s.flush()


class FeedRepo:
    """Read models across nodes (timelines, short ids, counts)."""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def timeline(self, bare: str, limit: int) -> Sequence[tuple[NodeRef, Item]]:
        followed = (select(SubscriptionRow.node_id).where(
            SubscriptionRow.bare == bare, SubscriptionRow.state == SubState.SUBSCRIBED.value))
        rows = (await self.s.execute(
            select(NodeRow.service, NodeRow.node, ItemRow).join(ItemRow, ItemRow.node_id == NodeRow.id)
            .where(ItemRow.node_id.in_(followed)).order_by(ItemRow.id.desc()).limit(limit))).all()
        return [(NodeRef(sv, n), _item(i)) for sv, n, i in rows]

    async def find(self, prefix: str, limit: int, scope: Scope) -> Sequence[tuple[NodeRef, Item]]:
        q = (select(NodeRow.service, NodeRow.node, ItemRow).join(ItemRow, ItemRow.node_id == NodeRow.id)
             .where(ItemRow.item_id.like(_like_prefix(prefix), escape="\\"),
                    # never the public timeline's copies (on the service JID, the one local node
                    # without a local part): the posts they copy are candidates themselves
                    NodeRow.remote | NodeRow.service.contains("@", autoescape=True)))
        if self.s.bind.dialect.name == "sqlite":
            # SQLite's LIKE is case-insensitive and cannot use the BINARY index on item_id: a range
            # can (the LIKE above still decides)
            q = q.where(ItemRow.item_id >= prefix, ItemRow.item_id < prefix + "\U0010ffff")
        if scope.exact:
            q = q.where(ItemRow.item_id == prefix)
        if scope.service is not None:
            q = q.where(NodeRow.service == scope.service)
        if scope.node is not None:
            q = q.where(NodeRow.node == scope.node)
        if scope.open_only:
            # a comments node follows its blog's access model, not the one stored on its own row
            blog = aliased(NodeRow)
            q = q.where(NodeRow.remote | exists().where(
                blog.service == NodeRow.service, blog.node == NS_MICROBLOG,
                blog.access_model == AccessModel.OPEN.value))
        if scope.follower is not None:
            q = q.where(ItemRow.node_id.in_(select(SubscriptionRow.node_id).where(
                SubscriptionRow.bare == scope.follower, SubscriptionRow.state == SubState.SUBSCRIBED.value)))
        if scope.publisher is not None:
            q = q.where(ItemRow.publisher == scope.publisher)
        rows = (await self.s.execute(q.order_by(ItemRow.id.desc()).limit(limit))).all()
        return [(NodeRef(sv, n), _item(i)) for sv, n, i in rows]

    async def posts(self, keys: Sequence[tuple[NodeRef, str]]) -> Sequence[tuple[Node, Item]]:
        if not keys:
            return []
        # One read through the item id index; the (service, node) pairs are matched here: the
        # planners pick a poor plan for a three-column IN list.
        wanted = {(ref.service, ref.node, item_id) for ref, item_id in keys}
        rows = (await self.s.execute(_POSTS, {"ids": sorted({i for _, _, i in wanted}),
                                              "services": sorted({sv for sv, _, _ in wanted})})).all()
        return [(_node(r.NodeRow), _item(r.ItemRow)) for r in rows
                if (r.NodeRow.service, r.NodeRow.node, r.ItemRow.item_id) in wanted]

    async def latest(self, ref: NodeRef) -> Item | None:
        row = (await self.s.execute(
            select(ItemRow).join(NodeRow, NodeRow.id == ItemRow.node_id)
            .where(NodeRow.service == ref.service, NodeRow.node == ref.node)
            .order_by(ItemRow.id.desc()).limit(1))).scalar_one_or_none()
        return _item(row) if row else None

    async def public_blogs(self, service_jid: str) -> Sequence[tuple[Node, int]]:
        """Local open microblog nodes with their item counts (the HTTP user list)."""
        counts = select(ItemRow.node_id, func.count().label("n")).group_by(ItemRow.node_id).subquery()
        rows = (await self.s.execute(
            select(NodeRow, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.node_id == NodeRow.id)
            .where(NodeRow.node == NS_MICROBLOG, NodeRow.remote.is_(False),
                   NodeRow.access_model == AccessModel.OPEN.value, NodeRow.service != service_jid,
                   NodeRow.service.like("%@" + service_jid), counts.c.n > 0)
            .order_by(NodeRow.service))).all()
        return [(_node(n), int(c)) for n, c in rows]

    async def comments_by(self, publisher: str) -> Sequence[tuple[NodeRef, Item]]:
        return await self._published_on(publisher, COMMENTS_PREFIX)

    async def attachments_by(self, publisher: str) -> Sequence[tuple[NodeRef, Item]]:
        return await self._published_on(publisher, ATTACHMENTS_PREFIX)

    async def _published_on(self, publisher: str, prefix: str) -> Sequence[tuple[NodeRef, Item]]:
        """What `publisher` published on local nodes named `prefix…`. No index on the publisher:
        an export or a deletion (rare, and one user's) reads the items of those nodes once."""
        rows = (await self.s.execute(
            select(NodeRow.service, NodeRow.node, ItemRow).join(ItemRow, ItemRow.node_id == NodeRow.id)
            .where(ItemRow.publisher == publisher, NodeRow.remote.is_(False),
                   NodeRow.node.startswith(prefix, autoescape=True))
            .order_by(ItemRow.id))).all()
        return [(NodeRef(sv, n), _item(i)) for sv, n, i in rows]


class OutboxRepo:
    """Planned notifications.

    Recipients on this server's own domains (`local`) are stored in the event
    row itself and handed over in one write (the fast path); every other
    recipient gets an `outbox` row of its own, so a bounce can name it.
    """

    def __init__(self, s: AsyncSession, clock: Clock | None = None,
                 local: Callable[[str], bool] | None = None) -> None:
        self.s = s
        # Rows are stamped with the service's clock, so "due" and "retry" agree with it.
        self._now = clock.now if clock is not None else now
        self._local = local

    async def add(self, event: OutboxEvent) -> int:
        if not event.recipients:
            return 0
        local: list[str] = []
        tracked: list[str] = []
        for r in event.recipients:
            (local if self._local is not None and "\n" not in r and self._local(r) else tracked).append(r)
        when = self._now()
        event_id = int((await self.s.execute(_EVENT_INSERT, {
            "kind": event.kind.value, "sender": event.sender, "node": event.node, "item_id": event.item_id,
            "payload": event.payload, "publisher": event.publisher, "subject": event.subject,
            "state": event.state, "created_at": when, "recipients": "\n".join(local) if local else None,
            "next_at": when if local else None, "shard": shard_of(event.sender)})).scalar_one())
        if tracked:
            # One statement for all recipients: fan-out is planned once (DESIGN.md).
            await self.s.execute(_OUTBOX_INSERT, [
                {"event_id": event_id, "recipient": r, "attempts": 0, "next_at": when} for r in tracked])
        return event_id

    async def due_bulk(self, at: datetime, limit: int, shards: frozenset[int] | None = None) -> Sequence[BulkDelivery]:
        """Events with local recipients due at `at`, oldest first; only those of `shards` if given
        (a worker of a cluster sends its own shards' notifications)."""
        params: dict[str, Any] = {"at": at, "limit": limit}
        if shards is not None:
            params["shards"] = _shard_mask(shards)
        rows = (await self.s.execute(_DUE_BULK if shards is None else _DUE_BULK_OF, params)).all()
        return [BulkDelivery(r.id, OutboxEvent(
            EventKind(r.kind), r.sender, r.node, tuple(r.recipients.split("\n")) if r.recipients else (),
            r.item_id, r.payload, r.publisher, r.subject, r.state), utc(r.created_at)) for r in rows]

    async def bulk_handed(self, event_ids: Sequence[int]) -> None:
        """These events' local recipients all were handed to the stream."""
        if not event_ids:
            return
        ids = {"ids": list(event_ids)}
        # the local recipients of posts are counted before they are forgotten (`status ID`)
        await self.s.execute(self._counts()[1], {"ids": ids["ids"], "at": self._now()})
        await self.s.execute(_EVENTS_HANDED, ids)
        await self.s.execute(_EVENTS_FINISHED, ids)

    def _counts(self) -> tuple[Any, Any]:
        return _count_statements(self.s.bind.dialect.name)

    async def _add_counts(self, counts: dict[tuple[str, str, str, str], list[int]]) -> None:
        if counts:
            when = self._now()
            await self.s.execute(self._counts()[0], [
                {"sender": k[0], "node": k[1], "item_id": k[2], "server": k[3], "delivered": n[0],
                 "failed": n[1], "created_at": when} for k, n in sorted(counts.items())])

    async def bulk_left(self, event_id: int, recipients: Sequence[str]) -> None:
        """Only these local recipients of the event are still to be handed over."""
        if not recipients:
            await self.bulk_handed([event_id])
            return
        ev = (await self.s.execute(select(_E.c.kind, _E.c.sender, _E.c.node, _E.c.item_id, _E.c.recipients)
                                   .where(_E.c.id == event_id))).one_or_none()
        if ev is not None and ev.kind in _POST_KINDS and ev.item_id is not None and ev.recipients:
            handed = ev.recipients.count("\n") + 1 - len(recipients)
            if handed > 0:
                await self._add_counts({(ev.sender, ev.node, ev.item_id, ""): [handed, 0]})
        await self.s.execute(update(OutboxEventRow).where(OutboxEventRow.id == event_id)
                             .values(recipients="\n".join(recipients)))

    async def due(self, at: datetime, limit: int, shards: frozenset[int] | None = None) -> Sequence[OutboxDelivery]:
        """Tracked rows due at `at`, oldest first; only those of `shards` if given."""
        if shards is None:
            return await self._load(_DUE, {"at": at, "limit": limit})
        return await self._load(_DUE_OF, {"at": at, "limit": limit, "shards": _shard_mask(shards)})

    async def any_due(self, at: datetime, shards: frozenset[int]) -> bool:
        """Whether anything in `shards` is due at `at`."""
        return bool((await self.s.execute(_ANY_DUE_OF, {"at": at, "shards": _shard_mask(shards)})).scalar())

    async def _load(self, query: Any, params: dict[str, Any]) -> list[OutboxDelivery]:
        events: dict[int, OutboxEvent] = {}
        out = []
        for r in (await self.s.execute(query, params)).all():
            ev = events.get(r.event_id)
            if ev is None:
                ev = events[r.event_id] = OutboxEvent(EventKind(r.kind), r.sender, r.node, (), r.item_id,
                                                      r.payload, r.publisher, r.subject, r.state)
            out.append(OutboxDelivery(r.id, r.event_id, r.recipient, r.attempts, ev, utc(r.created_at)))
        return out

    async def get(self, row_id: int) -> OutboxDelivery | None:
        rows = await self._load(_DELIVERY_BY_ID, {"row_id": row_id})
        return rows[0] if rows else None

    async def mark_sent(self, row_ids: Sequence[int], at: datetime) -> None:
        if row_ids:
            await self.s.execute(update(OutboxRow).where(OutboxRow.id.in_(list(row_ids))).values(sent_at=at))

    async def requeue_sent(self) -> int:
        """Sent but unconfirmed rows (a bounce may have been missed while nobody listened): due again."""
        res = await self.s.execute(update(OutboxRow).where(OutboxRow.sent_at.is_not(None))
                                   .values(sent_at=None, next_at=self._now()))
        return int(res.rowcount or 0)

    async def expire_sent(self, before: datetime, shards: frozenset[int] | None = None) -> int:
        query = select(OutboxRow.id).where(OutboxRow.sent_at.is_not(None), OutboxRow.sent_at < before)
        if shards is not None:
            query = query.join(_E, _E.c.id == OutboxRow.event_id).where(_E.c.shard.in_(sorted(shards)))
        ids = list((await self.s.execute(query)).scalars())
        await self.done(ids)
        return len(ids)

    async def done(self, row_ids: Sequence[int], failed: bool = False) -> None:
        if not row_ids:
            return
        event_ids = set()
        counts: dict[tuple[str, str, str, str], list[int]] = {}
        for r in (await self.s.execute(_ROWS_FORGOTTEN, {"ids": list(row_ids)})).all():
            event_ids.add(r.event_id)
            item_id = r.item_id if r.kind in _POST_KINDS and r.item_id is not None else ""
            counts.setdefault((r.sender, r.node, item_id, server_of(r.recipient)), [0, 0])[int(failed)] += 1
        await self._add_counts(counts)
        await self.s.execute(delete(OutboxRow).where(OutboxRow.id.in_(list(row_ids))))
        await self.s.execute(delete(OutboxEventRow).where(
            OutboxEventRow.id.in_(event_ids), OutboxEventRow.next_at.is_(None),
            ~exists().where(OutboxRow.event_id == OutboxEventRow.id)))

    async def retrying_servers(self, limit: int) -> list[str]:
        """The servers (domains) of up to `limit` recipients whose notifications bounced and wait
        for a retry."""
        rows = (await self.s.execute(select(_O.c.recipient).distinct().where(
            _O.c.attempts > 0, _O.c.sent_at.is_(None)).limit(limit))).scalars()
        return sorted({server_of(r) for r in rows})

    async def retry_now(self, server: str, at: datetime) -> int:
        """`server` answers again: every notification to it waiting for a retry is due at `at`,
        and so is every one sent to it since the first that bounced was planned and not bounced
        since (a server that is down does not always bounce: its host may drop what it queued
        for it). Returns how many."""
        on = or_(_O.c.recipient == server, _O.c.recipient.endswith(f"@{server}", autoescape=True),
                 _O.c.recipient.contains(f"@{server}/", autoescape=True))
        # when the outage began, at the latest: the planning of the oldest notification that bounced
        down_since = (select(func.min(_E.c.created_at)).select_from(_O.join(_E, _E.c.id == _O.c.event_id))
                      .where(on, _O.c.attempts > 0).scalar_subquery())
        since_down = select(_E.c.id).where(_E.c.created_at >= down_since)
        res = await self.s.execute(update(_O).where(on, or_(
            and_(_O.c.attempts > 0, _O.c.sent_at.is_(None), _O.c.next_at > at),
            and_(_O.c.sent_at.is_not(None), _O.c.event_id.in_(since_down)))).values(next_at=at, sent_at=None))
        return int(res.rowcount or 0)

    async def retry(self, row_id: int, attempts: int, next_at: datetime) -> None:
        await self.s.execute(update(OutboxRow).where(OutboxRow.id == row_id)
                             .values(attempts=attempts, next_at=next_at, sent_at=None))

    async def tallies_of(self, sender: str, node: str, item_id: str) -> Sequence[DeliveryTally]:
        counted = (await self.s.execute(select(_D.c.server, _D.c.delivered, _D.c.failed).where(
            _D.c.sender == sender, _D.c.node == node, _D.c.item_id == item_id))).all()
        post = (_E.c.sender == sender, _E.c.node == node, _E.c.item_id == item_id, _E.c.kind.in_(_POST_KINDS))
        # the outbox is drained within seconds and keeps other servers' rows for minutes: reading
        # its events without an index on the item (none is kept on the publish path) stays small
        waiting = (await self.s.execute(select(_E.c.recipients).where(*post, _E.c.recipients.is_not(None))))
        live = (await self.s.execute(select(_O.c.recipient, _O.c.attempts, _O.c.next_at, _O.c.sent_at)
                                     .join_from(_O, _E, _E.c.id == _O.c.event_id).where(*post))).all()
        tallies: dict[str, dict[str, Any]] = {}
        for server, delivered, failed in counted:
            t = tallies.setdefault(server, {})
            t["delivered"], t["failed"] = int(delivered), int(failed)
        for (recipients,) in waiting.all():
            t = tallies.setdefault("", {})
            t["pending"] = t.get("pending", 0) + recipients.count("\n") + 1
        self._add_live(tallies, [(server_of(r.recipient), r.attempts, r.next_at, r.sent_at, 1) for r in live])
        return [DeliveryTally(server, **t) for server, t in sorted(tallies.items())]

    @staticmethod
    def _add_live(tallies: dict[str, dict[str, Any]], rows: Sequence[tuple[str, int, Any, Any, int]]) -> None:
        """Rows still in the outbox: sent and not bounced (yet) counts as delivered, bounced once or
        more and waiting as retrying, the rest as pending."""
        for server, attempts, next_at, sent_at, n in rows:
            t = tallies.setdefault(server, {})
            if sent_at is not None:
                t["delivered"] = t.get("delivered", 0) + n
            elif attempts:
                t["retrying"] = t.get("retrying", 0) + n
                nxt = utc(next_at)
                t["next_try"] = min(t.get("next_try") or nxt, nxt)
            else:
                t["pending"] = t.get("pending", 0) + n

    async def tallies_by_server(self) -> Sequence[DeliveryTally]:
        counted = (await self.s.execute(
            select(_D.c.server, func.sum(_D.c.delivered), func.sum(_D.c.failed))
            .where(_D.c.server != "").group_by(_D.c.server))).all()
        retried, sent = _O.c.attempts > literal_column("0"), _O.c.sent_at.is_not(None)
        live = (await self.s.execute(
            select(_O.c.recipient, retried, func.min(_O.c.next_at), sent, func.count())
            .group_by(_O.c.recipient, retried, sent))).all()
        tallies: dict[str, dict[str, Any]] = {}
        for server, delivered, failed in counted:
            tallies[server] = {"delivered": int(delivered or 0), "failed": int(failed or 0)}
        self._add_live(tallies, [(server_of(r[0]), int(bool(r[1])), r[2], r[3] or None, int(r[4])) for r in live])
        return [DeliveryTally(server, **t) for server, t in sorted(tallies.items())]

    async def forget_tallies(self, before: datetime | None = None, sender: str | None = None) -> int:
        q = delete(_D)
        if before is not None:
            q = q.where(_D.c.created_at < before)
        if sender is not None:
            q = q.where(_D.c.sender == sender)
        return int((await self.s.execute(q)).rowcount or 0)

    async def backlog(self) -> tuple[int, datetime | None]:
        """(notifications not yet handed to the host, when the oldest of them was planned):
        rows not sent yet and the local recipients of events still to hand over."""
        rows, oldest_row = (await self.s.execute(
            select(func.count(), func.min(OutboxEventRow.created_at)).select_from(OutboxRow)
            .join(OutboxEventRow, OutboxEventRow.id == OutboxRow.event_id)
            .where(OutboxRow.sent_at.is_(None)))).one()
        bulk, oldest_bulk = (await self.s.execute(select(func.sum(_RECIPIENTS), func.min(_E.c.created_at))
                                                  .where(_E.c.recipients.is_not(None)))).one()
        oldest = [utc(t) for t in (oldest_row, oldest_bulk) if t is not None]
        return int(rows or 0) + int(bulk or 0), min(oldest) if oldest else None

    async def pending_count(self) -> int:
        rows = int((await self.s.execute(select(func.count()).select_from(OutboxRow))).scalar_one())
        bulk = (await self.s.execute(select(func.sum(_RECIPIENTS))
                                     .where(_E.c.recipients.is_not(None)))).scalar_one()
        return rows + int(bulk or 0)


class SqlUnitOfWork:
    """One session, one transaction; `commit()` or everything is rolled back."""

    def __init__(self, factory: async_sessionmaker, clock: Clock | None = None,
                 local: Callable[[str], bool] | None = None) -> None:
        self._factory = factory
        self._clock = clock
        self._local = local

    async def __aenter__(self) -> SqlUnitOfWork:
        bind = self._factory.kw.get("bind")
        self._lock = serial_lock(bind) if bind is not None else None
        if self._lock is not None:
            await self._lock.acquire()
        self.session = s = self._factory()
        self.nodes = NodeRepo(s)
        self.items = ItemRepo(s)
        self.subs = SubscriptionRepo(s)
        self.affs = AffiliationRepo(s)
        self.contacts = ContactRepo(s)
        self.outbox = OutboxRepo(s, self._clock, self._local)
        self.im = ImRepo(s)
        self.feed = FeedRepo(s)
        self.remote = RemoteRepo(s)
        self.stats = StatsRepo(s)
        self.keys = KeyRepo(s)
        self.peers = PeerKeyRepo(s)
        self.search = search_for_session(s)
        return self

    async def commit(self) -> None:
        await self.session.commit()

    async def __aexit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        try:
            await self.session.rollback()
            await self.session.close()
        except SQLAlchemyError:
            log.warning("rollback failed", exc_info=True)
        finally:
            if self._lock is not None:
                self._lock.release()
        if isinstance(exc, IntegrityError):
            log.info("database conflict (a concurrent change won): %s", str(exc.orig)[:200])
            raise errors.Contended("that conflicts with existing data") from exc
        if isinstance(exc, (SQLAlchemyError, OSError)) and not isinstance(exc, errors.BlogError):
            log.error("database error: %s", exc, exc_info=exc)
            raise errors.StorageUnavailable("the database is unavailable; try again") from exc


def uow_factory(factory: async_sessionmaker, clock: Clock | None = None,
                local: Callable[[str], bool] | None = None) -> Callable[[], SqlUnitOfWork]:
    """A zero-argument callable returning a fresh SqlUnitOfWork (core.ports.UnitOfWorkFactory).

    Args:
        local: is this recipient on one of our own domains? Their notifications take
            the bulk path (OutboxRepo); None sends every recipient through per-row tracking.
    """
    return lambda: SqlUnitOfWork(factory, clock, local)

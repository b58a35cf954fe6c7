# SPDX-License-Identifier: AGPL-3.0-or-later
"""The public timeline: a copy of every public local post on the service JID (core layer).

A projection of the domain events, in the transaction that made the change:
a public post is copied as `user/id` onto the service JID's microblog node (and
its subscribers are notified through the same ItemPublished path); a
retraction, a purge, a deletion or protecting the blog takes the copies away
(with retract notifications); re-opening a blog restores them quietly. Copies
belong to the blog they came from, whoever published them (a `publisher`
affiliate's posts too), and serving re-checks that the original is still
public (core/pubsub.py, `_still_public`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from .events import AccessChanged, ItemPublished, ItemRetracted, NodeDeleted, NodePurged
from .jid import parse
from .model import Item, Node, NodeConfig, NodeRef
from .transactions import Projections, Tx
from .visibility import MAX_ITEM_ID, NodeMap, all_items, is_public

log = logging.getLogger(__name__)


def copy_id(owner: str, item_id: str) -> str:
    """The id of a blog post's copy on the public timeline: `user/id`."""
    return f"{parse(owner).local}/{item_id}"


def _copy(owner: str, item: Item) -> Item | None:
    """The timeline copy of a blog post; None when its id would be too long for any client to
    ask for it by id (a very long user name beside a long item id): that post stays off it."""
    copy = replace(item, item_id=copy_id(owner, item.item_id))
    if len(copy.item_id) <= MAX_ITEM_ID:
        return copy
    log.warning("not on the public timeline: %s's post %.40s… (copy id over %d characters)", owner,
                item.item_id, MAX_ITEM_ID)
    return None


class PublicTimeline:
    """Copies every public post onto the public timeline (the firehose's base: core/firehose.py)."""

    def __init__(self, nodes: NodeMap, max_items: int) -> None:
        self.nodes = nodes
        self.max_items = max_items
        self._node: Node | None = None

    @property
    def ref(self) -> NodeRef:
        """The node the copies are kept on."""
        return self.nodes.timeline_ref

    def admits(self, ev: ItemPublished) -> bool:
        """Whether the post of `ev` (on a blog) gets a copy here."""
        return is_public(ev.access)

    def register(self, projections: Projections) -> None:
        projections.on(ItemPublished, self.published)
        projections.on(ItemRetracted, self.retracted)
        projections.on(NodePurged, self.emptied)
        projections.on(NodeDeleted, self.emptied)
        projections.on(AccessChanged, self.access_changed)

    def _is_blog(self, node: Node) -> bool:
        return not node.remote and not node.ref.of_post and not self.nodes.is_copies(node.ref)

    async def timeline(self, tx: Tx) -> Node:
        """The node of the copies, created with the first copy (it is never deleted nor reconfigured,
        so once it is known to be committed it is kept)."""
        if self._node is not None:
            return self._node
        ref = self.ref
        found = await tx.nodes.get(ref)
        if found is not None:
            self._node = found
            return found
        return await tx.nodes.create(Node(ref, self.nodes.addr.service_jid, NodeConfig(max_items=self.max_items)))

    async def published(self, tx: Tx, ev: ItemPublished) -> None:
        if not self._is_blog(ev.node):
            return
        if not self.admits(ev):
            if not ev.new:  # an edit that may not be copied any more takes the old copy away
                await self._remove(tx, [copy_id(ev.node.owner, ev.item.item_id)])
            return
        copy = _copy(ev.node.owner, ev.item)
        if copy is None:
            return
        tl = await self.timeline(tx)
        await tx.items.put(tl, copy, new=ev.new)
        await tx.items.trim(tl, self.max_items)
        # the blog's rules still say who may be told of the copy (core/fanout.py)
        await tx.emit(ItemPublished(tl, ev.access, copy, ev.text, ev.new, notify=ev.notify))

    async def retracted(self, tx: Tx, ev: ItemRetracted) -> None:
        if self._is_blog(ev.node):
            await self._remove(tx, [copy_id(ev.node.owner, ev.item_id)])

    async def emptied(self, tx: Tx, ev: NodePurged | NodeDeleted) -> None:
        if self._is_blog(ev.node):
            await self._remove_all(tx, ev.node)

    async def access_changed(self, tx: Tx, ev: AccessChanged) -> None:
        if not self._is_blog(ev.node):
            return
        if not is_public(ev.node):
            await self._remove_all(tx, ev.node)
            return
        # re-opened: its posts are public again, quietly (no notification floods)
        tl = await self.timeline(tx)
        async for item in all_items(tx, ev.node):
            copy = _copy(ev.node.owner, item)
            if copy is not None:
                await tx.items.put(tl, copy)
        await tx.items.trim(tl, self.max_items)

    async def _remove_all(self, tx: Tx, blog: Node) -> None:
        tl = await tx.nodes.get(self.ref)
        if tl is not None:
            await self._remove(tx, await tx.items.ids_with_prefix(tl, copy_id(blog.owner, "")), tl)

    async def _remove(self, tx: Tx, ids: Sequence[str], tl: Node | None = None) -> None:
        tl = tl or await tx.nodes.get(self.ref)
        if tl is None:
            return
        for tl_id in ids:
            if await tx.items.delete(tl, tl_id):
                await tx.emit(ItemRetracted(tl, tl, tl_id, notify=True))

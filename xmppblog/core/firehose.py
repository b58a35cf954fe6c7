# SPDX-License-Identifier: AGPL-3.0-or-later
"""The firehose: a copy of every discoverable public local post on the service JID, for
other servers and aggregators (core layer).

The public timeline's projection (core/timeline.py) with the consent rule of
core/discovery.py as its admission: a post is copied as `user/id` onto
`urn:xmppblog:firehose:0` when its entry carries the author's consent, and its
copy goes (with a retract notification to every subscriber: one per consumer
server) when the post is retracted, its blog purged, deleted or protected, or
its author withdraws consent. Unlike the public timeline, re-opening a blog or
consenting again brings no earlier post back: consent applies from then on.
"""

from __future__ import annotations

import logging

from .discovery import Discovery
from .events import AccessChanged, ConsentChanged, ItemPublished, NodeDeleted, NodePurged
from .model import Node, NodeRef
from .timeline import PublicTimeline
from .transactions import Projections, Tx
from .visibility import NodeMap, is_public

log = logging.getLogger(__name__)


class Firehose(PublicTimeline):
    def __init__(self, nodes: NodeMap, max_items: int, discovery: Discovery) -> None:
        super().__init__(nodes, max_items)
        self.discovery = discovery

    @property
    def ref(self) -> NodeRef:
        return self.nodes.firehose_ref

    def admits(self, ev: ItemPublished) -> bool:
        return ev.discoverable and is_public(ev.access)

    def register(self, projections: Projections) -> None:
        super().register(projections)
        projections.on(ConsentChanged, self.consent_changed)

    async def access_changed(self, tx: Tx, ev: AccessChanged) -> None:
        if self._is_blog(ev.node) and not is_public(ev.node):
            await self._remove_all(tx, ev.node)
            log.info("firehose: %s's posts withdrawn (the blog is no longer public)", ev.node.owner)

    async def consent_changed(self, tx: Tx, ev: ConsentChanged) -> None:
        if self._is_blog(ev.node) and not self.discovery.consents(ev.node):
            await self._withdraw_author(tx, ev.node)
            log.info("firehose: %s's posts withdrawn (no longer discoverable)", ev.node.owner)

    async def emptied(self, tx: Tx, ev: NodePurged | NodeDeleted) -> None:
        await super().emptied(tx, ev)
        if isinstance(ev, NodeDeleted) and self._is_blog(ev.node):  # the account goes
            await self._withdraw_author(tx, ev.node)

    async def _withdraw_author(self, tx: Tx, blog: Node) -> None:
        """Every copy of the owner of `blog`'s posts: on their blog, and on other blogs they
        wrote on (as a publisher affiliate)."""
        await self._remove_all(tx, blog)
        firehose = await tx.nodes.get(self.ref)
        if firehose is not None:
            await self._remove(tx, await tx.items.ids_published_by(firehose, blog.owner), firehose)

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Notifications: who is told about a change, and how, decided once per change (core layer).

A projection of the domain events (core/events.py): it runs inside the
transaction that made the change and writes the outbox events to send, so a
change and its notifications are committed together. For a post:

* XEP-0060 event notifications for `event` subscribers;
* chat messages for IM followers who are online and not paused;
* chat messages, marked, for tracked words, mentions and replies on public posts.

Every recipient passes the visibility rule at planning time (T6); each bare
JID gets a post once (IM wins over an event for the same person), never from
someone they blocked, and the author never gets their own post as chat.
Remote posts are sent from the author's proxy address (core/attribution.py).
"""

from __future__ import annotations

import logging

from .addressing import Addressing
from .attribution import sender_of
from .events import (
    Cause,
    ItemPublished,
    ItemRetracted,
    NodeDeleted,
    NodePurged,
    SubscriptionChanged,
)
from .jid import stored_bare
from .model import EDITED, AccessModel, Delivery, EventKind, Marker, Node, OutboxEvent, SubState
from .ports import OnlineView
from .text import MAX_MENTIONS, MAX_TRACK_WORDS, mentions, words
from .transactions import Projections, Tx
from .visibility import is_public, may_see

log = logging.getLogger(__name__)


def is_server(jid: str) -> bool:
    """A subscriber JID with no local part is another server (a server-level subscription)."""
    return "@" not in jid.split("/", 1)[0]


async def allowed_subscribers(tx: Tx, node: Node, access: Node) -> list[tuple[str, Delivery]]:
    """(JID, delivery) of subscribers who may see this node now (T6: at send time)."""
    if access.config.access_model is AccessModel.OPEN or access.remote:
        # one query: subscribed and not banned (the fan-out hot path)
        return list(await tx.subs.deliverable(node, access))
    out = []
    for s in await tx.subs.for_node(node, SubState.SUBSCRIBED):
        if is_server(s.jid):
            continue  # a server re-delivers to its users: public posts only travel this way
        if await may_see(tx, access, s.jid):
            out.append((s.jid, s.delivery))
    return out


async def event_subscribers(tx: Tx, node: Node, access: Node) -> tuple[str, ...]:
    return tuple(j for j, d in await allowed_subscribers(tx, node, access) if d.events)


async def ask_owner(tx: Tx, node: Node, subscriber: str) -> None:
    """The owner's approval form for a pending subscription (XEP-0060 §8.6)."""
    await tx.outbox.add(OutboxEvent(EventKind.SUBSCRIPTION_PENDING, node.ref.service, node.ref.node,
                                    (node.owner,), subject=subscriber, state=SubState.PENDING.value))


class Notifications:
    """Plans the outbox events of every change (registered on the domain events)."""

    def __init__(self, addr: Addressing, online: OnlineView) -> None:
        self.addr = addr
        self.online = online

    def register(self, projections: Projections) -> None:
        projections.on(ItemPublished, self.published)
        projections.on(ItemRetracted, self.retracted)
        projections.on(NodePurged, self.purged)
        projections.on(NodeDeleted, self.deleted)
        projections.on(SubscriptionChanged, self.subscription)

    async def published(self, tx: Tx, ev: ItemPublished) -> None:
        if not ev.notify:
            return
        for event in await self.plan_post(tx, ev):
            await tx.outbox.add(event)

    async def plan_post(self, tx: Tx, ev: ItemPublished) -> list[OutboxEvent]:
        """The outbox events for one new or updated post."""
        node, access, item = ev.node, ev.access, ev.item
        ref = node.ref
        author = item.publisher
        if ref.service == self.addr.service_jid:
            return await self._timeline_copy(tx, ev)
        subs = await allowed_subscribers(tx, node, access)
        public = is_public(access)
        im_candidates: dict[str, Marker] = {}
        event_jids: list[str] = []
        for jid, delivery in subs:
            if delivery.im:
                b = stored_bare(jid)
                if b != author:
                    im_candidates.setdefault(b, Marker.FOLLOW)
            if delivery.events:
                event_jids.append(jid)
        if ev.parent_owner and ev.parent_owner != author:
            im_candidates.setdefault(ev.parent_owner, Marker.REPLY)
        tracked: dict[str, str] = {}
        if public:
            for who in mentions(ev.text)[:MAX_MENTIONS]:
                if self.addr.is_local_user(who) and who != author:
                    im_candidates.setdefault(who, Marker.MENTION)
            for who, word in await tx.im.trackers(words(ev.text)[:MAX_TRACK_WORDS]):
                if who != author and who not in im_candidates:
                    im_candidates[who] = Marker.TRACK
                    tracked[who] = word
        # Only IM users who are online, did not pause delivery and did not block the author.
        online = await self.online.online_among(list(im_candidates)) if im_candidates else set()
        candidates = [b for b in im_candidates if b in online]
        # An author has few blockers and a post may have thousands of subscribers: with event
        # subscribers, read them all once; else only among the chat candidates.
        blockers = await tx.im.blockers_of(author) if event_jids else await tx.im.blockers_of(author, candidates)
        excluded = await tx.im.paused(candidates) | (blockers & set(candidates))
        # Offline followers are skipped: they catch up with `timeline`, nothing floods offline storage.
        im_by_marker: dict[tuple[Marker, str], list[str]] = {}
        for b in candidates:
            if b in excluded:
                continue
            marker = im_candidates[b]
            if marker is not Marker.FOLLOW and not await may_see(tx, access, b):
                continue  # replies, mentions and tracked words reach only those who may read the node
            im_by_marker.setdefault((marker, tracked.get(b, "")), []).append(b)
        # One copy per channel a person asked for: an event to whoever subscribed with XEP-0060
        # (their XEP-0277 client shows it), whatever chat message they also get; never to
        # someone who blocked the author.
        if event_jids and blockers:
            event_jids = [j for j in event_jids if stored_bare(j) not in blockers]
        log.debug("fan-out: node=%s item=%s subscribers=%d im_candidates=%d online=%d excluded=%d events_to=%d",
                  ref, item.item_id, len(subs), len(im_candidates), len(candidates), len(excluded),
                  len(event_jids))
        events = []
        if event_jids:
            events.append(OutboxEvent(EventKind.ITEM_PUBLISHED, ref.service, ref.node, tuple(event_jids),
                                      item_id=item.item_id, payload=item.payload, publisher=author))
        sender = sender_of(self.addr, node, author)
        for (marker, word), people in im_by_marker.items():
            events.append(OutboxEvent(EventKind.IM_POST, sender, ref.node, tuple(people), item_id=item.item_id,
                                      payload=item.payload, publisher=author,
                                      subject=f"{marker.value}:{word}" if word else marker.value,
                                      state=None if ev.new else EDITED))
        return events

    async def _timeline_copy(self, tx: Tx, ev: ItemPublished) -> list[OutboxEvent]:
        """A public timeline copy goes to the timeline's event subscribers only (the original was
        the post), minus those the blog banned and those who blocked the author: `ev.access` is
        the blog the copy came from (core/timeline.py)."""
        tl, item = ev.node, ev.item
        # the blog is public (core/timeline.py), so this is one query that also drops its outcasts
        jids = await event_subscribers(tx, tl, ev.access)
        if jids:
            blockers = await tx.im.blockers_of(item.publisher)
            jids = tuple(j for j in jids if stored_bare(j) not in blockers)
        return [OutboxEvent(EventKind.ITEM_PUBLISHED, tl.ref.service, tl.ref.node, jids, item_id=item.item_id,
                            payload=item.payload, publisher=item.publisher)] if jids else []

    async def retracted(self, tx: Tx, ev: ItemRetracted) -> None:
        """Retractions go to event subscribers only: chat users are not sent deletions."""
        if not ev.notify:
            return
        jids = await event_subscribers(tx, ev.node, ev.access)
        if jids:
            await tx.outbox.add(OutboxEvent(EventKind.ITEM_RETRACTED, ev.node.ref.service, ev.node.ref.node,
                                            jids, item_id=ev.item_id))

    async def purged(self, tx: Tx, ev: NodePurged) -> None:
        jids = await event_subscribers(tx, ev.node, ev.access)
        if jids:
            await tx.outbox.add(OutboxEvent(EventKind.NODE_PURGED, ev.node.ref.service, ev.node.ref.node, jids))

    async def deleted(self, tx: Tx, ev: NodeDeleted) -> None:
        jids = await event_subscribers(tx, ev.node, ev.access)
        if jids:
            await tx.outbox.add(OutboxEvent(EventKind.NODE_DELETED, ev.node.ref.service, ev.node.ref.node, jids))

    async def subscription(self, tx: Tx, ev: SubscriptionChanged) -> None:
        if ev.after is SubState.PENDING and ev.before is SubState.NONE:
            await ask_owner(tx, ev.node, ev.jid)
        if ev.cause is Cause.OWNER and ev.before is not ev.after:
            # XEP-0060 §8.8.4: the subscriber learns what the owner decided.
            await tx.outbox.add(OutboxEvent(EventKind.SUBSCRIPTION_CHANGED, ev.node.ref.service, ev.node.ref.node,
                                            (ev.jid,), subject=ev.jid, state=ev.after.value))

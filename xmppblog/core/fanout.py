# SPDX-License-Identifier: AGPL-3.0-or-later
"""Fan-out planning: who gets a post, and how, decided once per post (core layer).

`plan_post` reads the subscribers in one query, applies the node's access
model at send time (T6), and returns the outbox events to write in the
publishing transaction:

* XEP-0060 event notifications for `event` subscribers;
* chat messages for IM followers who are online and not paused;
* chat messages, marked, for tracked words, mentions and replies on public posts.

Each bare JID gets a post once (IM wins over an event for the same person),
never from someone they blocked, and the author never gets their own post as chat.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .addressing import Addressing
from .jid import stored_bare
from .model import AccessModel, Affiliation, Delivery, EventKind, Marker, Node, OutboxEvent, SubState
from .policy import Action, Viewer, may
from .ports import OnlineView, UnitOfWork
from .text import MAX_TRACK_WORDS, mentions, words


log = logging.getLogger(__name__)


def is_server(jid: str) -> bool:
    """A subscriber JID with no local part is another server (a server-level subscription)."""
    return "@" not in jid.split("/", 1)[0]


async def viewer_of(uow: UnitOfWork, access: Node, jid: str) -> Viewer:
    if jid == access.owner:
        return Viewer(Affiliation.OWNER, SubState.SUBSCRIBED, True)
    model = access.config.access_model
    aff = await uow.affs.get(access, jid)
    state = await uow.subs.state_of(access, jid) if model is AccessModel.AUTHORIZE else SubState.NONE
    presence = model is AccessModel.PRESENCE and await uow.contacts.has_presence(access.ref.service, jid)
    return Viewer(aff, state, presence)


async def allowed_subscribers(uow: UnitOfWork, node: Node, access: Node) -> list[tuple[str, Delivery]]:
    """(JID, delivery) of subscribers who may still see this node now (T6: at send time)."""
    if access.config.access_model is AccessModel.OPEN:
        # one query: subscribed and not banned (the fan-out hot path)
        return list(await uow.subs.deliverable(node, access))
    subs = await uow.subs.for_node(node, SubState.SUBSCRIBED)
    out = []
    for s in subs:
        if is_server(s.jid):
            continue  # a server re-delivers to its users: public posts only travel this way

        viewer = await viewer_of(uow, access, stored_bare(s.jid))
        if may(Action.BE_SUBSCRIBED, access.config.access_model, viewer):
            out.append((s.jid, s.delivery))
    return out


@dataclass(frozen=True, slots=True)
class Post:
    node: Node
    access: Node
    item_id: str
    payload: str
    author: str          # bare JID of the author
    text: str            # plain text, for tracking and mentions
    parent_owner: str | None = None  # for a comment: who wrote the post it answers


async def plan_post(uow: UnitOfWork, addr: Addressing, online: OnlineView, post: Post) -> list[OutboxEvent]:
    """The outbox events for one new or updated post."""
    ref = post.node.ref
    subs = await allowed_subscribers(uow, post.node, post.access)
    public = post.access.config.access_model is AccessModel.OPEN
    im_candidates: dict[str, Marker] = {}
    event_jids: list[str] = []
    for jid, delivery in subs:
        if delivery is Delivery.IM:
            b = stored_bare(jid)
            if b != post.author:
                im_candidates.setdefault(b, Marker.FOLLOW)
        else:
            event_jids.append(jid)
    if post.parent_owner and post.parent_owner != post.author:
        im_candidates.setdefault(post.parent_owner, Marker.REPLY)
    tracked: dict[str, str] = {}
    if public:
        for who in mentions(post.text):
            if addr.is_local_user(who) and who != post.author:
                im_candidates.setdefault(who, Marker.MENTION)
        for who, word in await uow.im.trackers(words(post.text)[:MAX_TRACK_WORDS]):
            if who != post.author and who not in im_candidates:
                im_candidates[who] = Marker.TRACK
                tracked[who] = word
    # Only IM users who are online, did not pause delivery and did not block the author.
    candidates = [b for b in im_candidates if online.is_online(b)]
    excluded = await uow.im.paused(candidates) | await uow.im.blockers_of(post.author, candidates)
    # Offline followers are skipped: they catch up with `timeline`, nothing floods offline storage.
    im_by_marker: dict[tuple[Marker, str], list[str]] = {}
    for b in candidates:
        if b in excluded:
            continue
        marker = im_candidates[b]
        if marker is Marker.REPLY or marker is Marker.MENTION:
            # replies and mentions reach only those who may read the node
            viewer = await viewer_of(uow, post.access, b)
            if not may(Action.RETRIEVE_ITEMS, post.access.config.access_model, viewer):
                continue
        im_by_marker.setdefault((marker, tracked.get(b, "")), []).append(b)
    # Dedup (DESIGN: one delivery per post per person): IM followers get no event copy.
    im_people = {b for group in im_by_marker.values() for b in group} | {
        b for b in im_candidates if im_candidates[b] is Marker.FOLLOW}
    # An author has few blockers and a post may have thousands of subscribers: read the former.
    skip = im_people | await uow.im.blockers_of(post.author) if event_jids else im_people
    if skip:
        event_jids = [j for j in event_jids if stored_bare(j) not in skip]

    log.debug("fan-out: node=%s item=%s subscribers=%d im_candidates=%d online=%d excluded=%d events_to=%d",
              ref, post.item_id, len(subs), len(im_candidates), len(candidates), len(excluded), len(event_jids))
    events = []
    if event_jids:
        events.append(OutboxEvent(EventKind.ITEM_PUBLISHED, ref.service, ref.node, tuple(event_jids),
                                  item_id=post.item_id, payload=post.payload, publisher=post.author))
    # Never send from outside our domain (THREATS.md fact 4): remote authors have a proxy address.
    sender = addr.blog_of(post.author) or addr.proxy_of(post.author)
    for (marker, word), people in im_by_marker.items():
        events.append(OutboxEvent(EventKind.IM_POST, sender, ref.node, tuple(people), item_id=post.item_id,
                                  payload=post.payload, publisher=post.author,
                                  subject=f"{marker.value}:{word}" if word else marker.value))
    return events


async def plan_retract(uow: UnitOfWork, node: Node, access: Node, item_id: str) -> list[OutboxEvent]:
    """Retractions go to event subscribers only: chat users are not sent deletions."""
    jids = tuple(j for j, d in await allowed_subscribers(uow, node, access) if d is Delivery.EVENT)
    if not jids:
        return []
    return [OutboxEvent(EventKind.ITEM_RETRACTED, node.ref.service, node.ref.node, jids, item_id=item_id)]

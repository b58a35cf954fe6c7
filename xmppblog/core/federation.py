# SPDX-License-Identifier: AGPL-3.0-or-later
"""FederationService: following nodes on other servers, and what they push (core layer).

However many local users follow a remote node, this server holds ONE
subscription to it, as its service JID (DESIGN.md: one delivery per remote
server). The remote node is cached locally as a node marked `remote`, keyed by
its own service JID and name, so item ids never cross nodes (T3); local
followers are ordinary IM subscriptions on that cached node, and fan-out is
the same as for local posts, sent from the author's proxy address.

Nothing here talks to the network: `federation/` sends the IQs this service
asks for, and passes inbound pushes through spamguard before `ingest`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from . import errors, fanout
from .addressing import Addressing
from .model import (
    Actor,
    Delivery,
    EventKind,
    Item,
    Node,
    NodeConfig,
    NodeRef,
    RemoteSub,
    SubState,
)
from .ports import Clock, EntryCodec, OnlineView, UnitOfWork, UnitOfWorkFactory
from .search import SearchDoc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RemoteFollow:
    author: str            # the remote user (bare JID)
    ref: NodeRef           # the remote node
    first: bool            # True: no local follower before, subscribe at the remote service
    already: bool          # this user already followed it


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    item_id: str
    draft: object          # a validated entry (pubsub/xep_0277.AtomDraft)
    author: str            # the bare JID its Atom author names ('' if none)


class CommitHook(Protocol):
    """Commits a unit of work and wakes the outbox sender (BlogService.commit)."""

    async def __call__(self, uow: UnitOfWork) -> None: ...


class FederationService:
    def __init__(self, addr: Addressing, uow: UnitOfWorkFactory, codec: EntryCodec, clock: Clock,
                 online: OnlineView, commit_hook: CommitHook) -> None:
        self.addr = addr
        self._uow = uow
        self._codec = codec
        self._clock = clock
        self._online = online
        self._commit = commit_hook

    async def _cached(self, uow: UnitOfWork, ref: NodeRef, author: str, create: bool) -> Node | None:
        node = await uow.nodes.get(ref)
        if node is None and create:
            node = await uow.nodes.create(Node(ref, author, NodeConfig(), remote=True))
        return node

    async def follow(self, actor: Actor, author: str, ref: NodeRef) -> RemoteFollow:
        """Record that `actor` follows a remote node; say whether to subscribe remotely."""
        if self.addr.is_local_user(author) or ref.service.endswith("@" + self.addr.service_jid) \
                or ref.service == self.addr.service_jid:
            raise errors.BadRequest("that is a blog on this server")
        async with self._uow() as uow:
            node = await self._cached(uow, ref, author, create=True)
            assert node is not None
            existing = await uow.subs.get(node, actor.jid)
            await uow.subs.put(node, actor.jid, SubState.SUBSCRIBED, Delivery.IM)
            held = await uow.remote.get(ref.service, ref.node, self.addr.service_jid)
            if held is None:
                await uow.remote.put(RemoteSub(ref.service, ref.node, self.addr.service_jid, SubState.PENDING))
            await self._commit(uow)
        log.info("remote follow: %s -> %s node=%s (first=%s)", actor.jid, ref.service, ref.node, held is None)
        return RemoteFollow(author, ref, held is None, existing is not None)

    async def confirmed(self, ref: NodeRef, state: SubState) -> None:
        """The remote service answered our subscribe (or a re-check found this state)."""
        async with self._uow() as uow:
            if state is SubState.NONE:
                await uow.remote.delete(ref.service, ref.node, self.addr.service_jid)
            else:
                await uow.remote.put(RemoteSub(ref.service, ref.node, self.addr.service_jid, state))
            await uow.commit()

    async def unfollow(self, actor: Actor, ref: NodeRef) -> bool:
        """Stop following; True when the last local follower left (unsubscribe remotely).

        Raises:
            NotSubscribed: the actor did not follow it.
        """
        async with self._uow() as uow:
            node = await uow.nodes.get(ref)
            if node is None or not await uow.subs.delete(node, actor.jid):
                raise errors.NotSubscribed(f"you are not following {ref.service}")
            last = not await uow.subs.for_node(node)
            if last:
                await uow.remote.delete(ref.service, ref.node, self.addr.service_jid)
            await uow.commit()
        return last

    async def held(self) -> Sequence[RemoteSub]:
        async with self._uow() as uow:
            return list(await uow.remote.all())

    async def consented(self, origin: str, node: str) -> bool:
        """Does this server hold a subscription a local user asked for, to exactly (origin, node)?

        A row is 'pending' only between our subscribe request and its answer (a
        service may push the last item before answering). Subscriptions awaiting
        an owner's approval are never held: servers follow open nodes only, and
        `federation/remote.py` withdraws such a request at once.
        """
        async with self._uow() as uow:
            return await uow.remote.consented(origin, node)

    async def last_item_id(self, ref: NodeRef) -> str | None:
        async with self._uow() as uow:
            latest = await uow.feed.latest(ref)
            return latest.item_id if latest else None

    async def ingest(self, origin: str, node_name: str, entries: Sequence[RemoteEntry],
                     notify: bool = True) -> int:
        """Store pushed (or fetched) entries of a consented remote node and plan local fan-out.

        Args:
            origin: the remote service JID, as stamped by the host server.
            notify: False for catch-up after downtime (timeline only, no chat flood).

        Returns:
            How many entries were new or changed.
        """
        ref = NodeRef(origin, node_name)
        stored = 0
        async with self._uow() as uow:
            node = await uow.nodes.get(ref)
            if node is None or not node.remote:
                log.info("push dropped: origin=%s node=%s reason=no-cache", origin, node_name)
                return 0
            for entry in entries:
                payload = self._codec.raw(entry.draft)
                existing = await uow.items.get(node, entry.item_id)
                if existing is not None and existing.payload == payload:
                    continue
                now = self._clock.now()
                await uow.items.put(node, Item(entry.item_id, node.owner, payload,
                                               existing.published if existing else now, now))
                await uow.search.index(SearchDoc.of(ref, entry.item_id, node.owner,
                                                    existing.published if existing else now,
                                                    self._codec.text(entry.draft)))
                stored += 1
                if notify:
                    # a relay node (a service's public timeline) carries many authors: name each one
                    author = entry.author if entry.author and "@" not in node.owner else node.owner
                    events = await fanout.plan_post(uow, self.addr, self._online, fanout.Post(
                        node, node, entry.item_id, payload, author, self._codec.text(entry.draft)))
                    for event in events:
                        if event.kind is EventKind.IM_POST:
                            await uow.outbox.add(event)
            await uow.items.trim(node, NodeConfig().max_items)
            await self._commit(uow)
        if stored:
            log.info("remote items stored: origin=%s node=%s count=%d notify=%s", origin, node_name, stored, notify)
        return stored

    async def retract(self, origin: str, node_name: str, item_ids: Sequence[str]) -> int:
        """Apply retractions pushed by the node's own service (T14: only from the origin)."""
        removed = 0
        async with self._uow() as uow:
            node = await uow.nodes.get(NodeRef(origin, node_name))
            if node is None or not node.remote:
                return 0
            for item_id in item_ids:
                removed += int(await uow.items.delete(node, item_id))
                await uow.search.remove(node.ref, item_id)
            await uow.commit()
        return removed

    async def purge(self, origin: str, node_name: str) -> int:
        async with self._uow() as uow:
            node = await uow.nodes.get(NodeRef(origin, node_name))
            if node is None or not node.remote:
                return 0
            count = await uow.items.purge(node)
            await uow.search.remove(node.ref)
            await uow.commit()
        return count

    async def owner_of(self, ref: NodeRef) -> str | None:
        """Whose remote node this is (the author resolved when it was followed)."""
        async with self._uow() as uow:
            node = await uow.nodes.get(ref)
            return node.owner if node is not None and node.remote else None

    def codec_raw(self, draft: object) -> str:
        return self._codec.raw(draft)

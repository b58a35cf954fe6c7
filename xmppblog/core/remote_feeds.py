# SPDX-License-Identifier: AGPL-3.0-or-later
"""Remote feeds: nodes on other servers followed here, and what they push (core layer).

However many local users follow a remote node, this server holds ONE
subscription to it, as its service JID (DESIGN.md: one delivery per remote
server). The remote node is cached locally as a node marked `remote`, keyed by
its own service JID and name, so item ids never cross nodes (T3); local
followers are ordinary IM subscriptions on that cached node, and fan-out is
the same as for local posts, sent from the author's proxy address.

Nothing here talks to the network: `federation/` sends the IQs, verifies
signatures and passes each push through spamguard before `ingest`, which
stores it in ONE transaction: consent read again, every entry checked on its
own (its id, the attribution rule of core/attribution.py), stored, and its
projections (notifications, search index) planned. The admin's real-time
block lists are `reserved`: users' follows and unfollows never touch them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from . import errors
from .addressing import Addressing
from .attribution import Claim, attribute
from .events import ItemPublished, ItemRetracted, NodeDeleted, NodePurged
from .model import NS_FIREHOSE, Actor, Delivery, Item, Node, NodeConfig, NodeRef, RemoteSub, SubState
from .ports import Clock, EntryCodec
from .transactions import Transactions, Tx, retry_contended
from .visibility import validate_item_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RemoteFollow:
    author: str            # the remote user (bare JID)
    ref: NodeRef           # the remote node
    first: bool            # True: no local follower before, subscribe at the remote service
    already: bool          # this user already followed it


@dataclass(frozen=True, slots=True)
class Incoming:
    """One entry of a push or a fetched page, parsed (and its signature checked) by the adapter."""

    item_id: str
    draft: object          # a validated entry from the codec's parser
    claim: Claim


@dataclass(slots=True)
class Ingested:
    stored: int = 0
    #: (item id, drop reason) of the entries refused on their own
    dropped: list[tuple[str, str]] = field(default_factory=list)


class RemoteFeeds:
    def __init__(self, addr: Addressing, transactions: Transactions, codec: EntryCodec, clock: Clock,
                 max_items: int, reserved: frozenset[NodeRef] = frozenset()) -> None:
        self.addr = addr
        self._tx = transactions
        self._codec = codec
        self._clock = clock
        self.max_items = max_items
        #: nodes whose consent is the admin's (real-time block lists): users never follow or end them
        self.reserved = reserved

    def _check_followable(self, author: str, ref: NodeRef) -> None:
        if self.addr.serves(author) or self.addr.serves(ref.service) or ref.service == self.addr.service_jid:
            raise errors.BadRequest("that is a blog on this server")
        if ref in self.reserved:
            raise errors.Forbidden("that node is one of this server's block lists; the admins follow it")
        if ref.node == NS_FIREHOSE:
            # what enters the network-wide view is the admins' choice ([aggregator] sources)
            raise errors.Forbidden("that is a server's firehose: only this server's admins follow one")

    @retry_contended  # two first followers at once: the one that did not create the node runs again
    async def follow(self, actor: Actor, author: str, ref: NodeRef) -> RemoteFollow:
        """Record that `actor` follows a remote node; say whether to subscribe remotely.

        Raises:
            BadRequest (a node of ours), Forbidden (a reserved node).
        """
        self._check_followable(author, ref)
        async with self._tx() as tx:
            # Follows and unfollows of one node take turns (workers of a cluster run them at
            # once): the last follower leaving must see a follower who just came, or the
            # subscription is ended while someone still follows.
            node = await tx.nodes.get_locked(ref)
            if node is None:
                node = await tx.nodes.create(Node(ref, author, NodeConfig(max_items=self.max_items), remote=True))
            elif not node.remote:
                raise errors.BadRequest("that is a blog on this server")
            existing = await tx.subs.get(node, actor.jid)
            await tx.subs.put(node, actor.jid, SubState.SUBSCRIBED,
                              existing.delivery.plus(Delivery.IM) if existing is not None else Delivery.IM)
            held = await tx.remote.get(ref.service, ref.node, self.addr.service_jid)
            if held is None:
                await tx.remote.put(RemoteSub(ref.service, ref.node, self.addr.service_jid, SubState.PENDING))
            await tx.commit()
        log.info("remote follow: %s -> %s node=%s (first=%s)", actor.jid, ref.service, ref.node, held is None)
        return RemoteFollow(author, ref, held is None, existing is not None)

    async def unfollow(self, actor: Actor, ref: NodeRef) -> bool:
        """Stop following; True when the last local follower left (unsubscribe remotely).

        Raises:
            NotSubscribed: the actor did not follow it.
        """
        async with self._tx() as tx:
            last = await self.unfollow_in(tx, actor, ref)
            await tx.commit()
        return last

    async def unfollow_in(self, tx: Tx, actor: Actor, ref: NodeRef, jid: str | None = None) -> bool:
        """`unfollow` inside an open transaction; `jid`: the subscription's JID if not the actor's."""
        node = await tx.nodes.get_locked(ref)  # after any follow under way (`follow`)
        if node is None or not node.remote or not await tx.subs.delete(node, jid or actor.jid):
            raise errors.NotSubscribed(f"you are not following {ref.service}")
        last = not await tx.subs.for_node(node) and ref not in self.reserved
        if last:
            await tx.remote.delete(ref.service, ref.node, self.addr.service_jid)
        return last

    async def followed_by(self, actor: Actor) -> list[Node]:
        """The remote nodes `actor` follows."""
        async with self._tx() as tx:
            out = []
            for sub in await tx.subs.following(actor.jid):
                node = await tx.nodes.get(sub.ref)
                if node is not None and node.remote:
                    out.append(node)
            return out

    async def confirmed(self, ref: NodeRef, state: SubState) -> None:
        """The remote service answered our subscribe (or a re-check found this state).

        NONE ends the consent: the cache and its followers go too (nothing is served
        from a node we no longer hold a subscription to). An answer that comes after the
        last follower left (and ended the subscription) does not hold it again.
        """
        async with self._tx() as tx:
            await tx.nodes.get_locked(ref)  # not while a follow or an unfollow of it is under way
            if state is SubState.NONE:
                await self._end(tx, ref)
            elif await tx.remote.get(ref.service, ref.node, self.addr.service_jid) is not None:
                await tx.remote.put(RemoteSub(ref.service, ref.node, self.addr.service_jid, state))
            else:
                log.info("remote subscription answered after the last follower left: service=%s node=%s",
                         ref.service, ref.node)
            await tx.commit()

    async def ended(self, origin: str, node_name: str) -> None:
        """The origin deleted the node or ended our subscription (a pushed delete or subscription=none)."""
        await self.confirmed(NodeRef(origin, node_name), SubState.NONE)

    async def _end(self, tx: Tx, ref: NodeRef) -> None:
        await tx.remote.delete(ref.service, ref.node, self.addr.service_jid)
        node = await tx.nodes.get(ref)
        if node is not None and node.remote:
            await tx.emit(NodeDeleted(node, node))
            await tx.nodes.delete(node)
            log.info("remote node dropped with its cache: service=%s node=%s", ref.service, ref.node)

    async def follow_source(self, ref: NodeRef, max_items: int) -> None:
        """The admin's consent to another server's firehose (`[aggregator] sources`, or one
        found among the servers we meet): its cache, owned by that service (so each entry is
        attributed to its signed author, core/attribution.py), keeping `max_items` posts; users'
        follows and unfollows never touch it. Idempotent."""
        self.reserved = self.reserved | {ref}
        async with self._tx() as tx:
            node = await tx.nodes.get_locked(ref)
            if node is None:
                await tx.nodes.create(Node(ref, ref.service, NodeConfig(max_items=max_items), remote=True))
            elif not node.remote:
                raise errors.BadRequest("that is a node of this server")
            elif node.config.max_items != max_items:  # the admin changed [aggregator] max_items
                await tx.nodes.update(replace(node, config=replace(node.config, max_items=max_items)))
            if await tx.remote.get(ref.service, ref.node, self.addr.service_jid) is None:
                await tx.remote.put(RemoteSub(ref.service, ref.node, self.addr.service_jid, SubState.PENDING))
            await tx.commit()

    async def reserve(self, ref: NodeRef) -> None:
        """The admin's consent to a reserved node (a block list named in the configuration)."""
        async with self._tx() as tx:
            if await tx.remote.get(ref.service, ref.node, self.addr.service_jid) is None:
                await tx.remote.put(RemoteSub(ref.service, ref.node, self.addr.service_jid, SubState.PENDING))
                await tx.commit()

    async def held(self) -> Sequence[RemoteSub]:
        async with self._tx() as tx:
            return list(await tx.remote.all())

    async def consented(self, origin: str, node: str) -> bool:
        """Does this server hold a subscription it asked for, to exactly (origin, node)?

        A row is 'pending' only between our subscribe request and its answer (a
        service may push the last item before answering). Subscriptions awaiting
        an owner's approval are never held: servers follow open nodes only, and
        `federation/remote.py` withdraws such a request at once.
        """
        async with self._tx() as tx:
            return await tx.remote.consented(origin, node)

    async def holds(self, ref: NodeRef, item_ids: Sequence[str]) -> set[str]:
        """Which of `item_ids` the cache of remote node `ref` holds."""
        async with self._tx() as tx:
            node = await tx.nodes.get(ref)
            if node is None:
                return set()
            return {i.item_id for i in await tx.items.get_many(node, list(item_ids))}

    async def last_item_id(self, ref: NodeRef) -> str | None:
        async with self._tx() as tx:
            latest = await tx.feed.latest(ref)
            return latest.item_id if latest else None

    async def ingest(self, origin: str, node_name: str, entries: Sequence[Incoming],
                     retracts: Sequence[str] = (), users_domain: str | None = None,
                     notify: bool = True) -> Ingested:
        """Store pushed (or fetched) entries of a consented remote node, in one transaction.

        Args:
            origin: the remote service JID, as stamped by the host server.
            users_domain: the users domain the origin advertises, if it is an xmppblog server.
            notify: False for catch-up after downtime (timeline only, no chat flood).

        Returns:
            How many entries were stored, and which were dropped (and why).
        """
        ref = NodeRef(origin, node_name)
        result = Ingested()
        async with self._tx() as tx:
            node = await tx.nodes.get(ref)
            if node is None or not node.remote or not await tx.remote.consented(origin, node_name):
                result.dropped = [(e.item_id, "no-subscription") for e in entries]
                return result
            for entry in entries:
                try:
                    validate_item_id(entry.item_id)
                    author = attribute(self.addr, node, entry.claim, users_domain)
                except errors.DroppedEntry as exc:
                    result.dropped.append((entry.item_id, exc.reason))
                    continue
                except errors.BadRequest:
                    result.dropped.append((entry.item_id[:64], "bad-item-id"))
                    continue
                if await self._store(tx, node, entry, author, notify):
                    result.stored += 1
            for item_id in retracts:
                if await tx.items.delete(node, item_id):
                    await tx.emit(ItemRetracted(node, node, item_id, notify=False))
            keep = node.config.max_items if node.ref.node == NS_FIREHOSE else self.max_items
            for dropped in await tx.items.trim(node, keep):
                await tx.emit(ItemRetracted(node, node, dropped, notify=False))
            await tx.commit()
        if result.stored:
            log.info("remote items stored: origin=%s node=%s count=%d notify=%s",
                     origin, node_name, result.stored, notify)
        return result

    async def _store(self, tx: Tx, node: Node, entry: Incoming, author: str, notify: bool) -> bool:
        payload = self._codec.raw(entry.draft)
        existing = await tx.items.get(node, entry.item_id)
        if existing is not None and existing.payload == payload and existing.publisher == author:
            return False
        now = self._clock.now()
        item = Item(entry.item_id, author, payload, existing.published if existing else now, now)
        await tx.items.put(node, item, new=existing is None)
        await tx.emit(ItemPublished(node, node, item, self._codec.text(entry.draft), existing is None, notify=notify))
        return True

    async def purge(self, origin: str, node_name: str) -> None:
        """The origin purged the node: its cache empties (retracts only from the origin, T14)."""
        async with self._tx() as tx:
            node = await tx.nodes.get(NodeRef(origin, node_name))
            if node is None or not node.remote:
                return
            await tx.items.purge(node)
            await tx.emit(NodePurged(node, node))
            await tx.commit()

# SPDX-License-Identifier: AGPL-3.0-or-later
"""BlogService: every pubsub operation on the blogs this server hosts (core layer).

It decides (who may do what, which subscribers get what) and writes through
the ports in one unit of work per request: a change and the notifications it
plans are committed together, before the adapter acknowledges it (THREATS.md
facts 7 and 9). It imports only the stdlib and its sibling core modules.
"""

from __future__ import annotations

import functools
import logging
import secrets
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import ParamSpec, TypeVar
from urllib.parse import quote

from . import errors, fanout, roster
from .addressing import Addressing
from .jid import bare, parse
from .model import (
    NS_MICROBLOG,
    AccessModel,
    Actor,
    Affiliation,
    Delivery,
    EventKind,
    Item,
    Node,
    NodeConfig,
    NodeRef,
    OutboxEvent,
    Page,
    PageRequest,
    Stamp,
    Subscription,
    SubState,
)
from .policy import Action, Viewer, check, may, subscribe_state
from .ports import Clock, EntryCodec, OnlineView, UnitOfWork, UnitOfWorkFactory
from .search import SearchDoc

log = logging.getLogger(__name__)

MAX_ITEM_ID = 256


P = ParamSpec("P")
R = TypeVar("R")


def retry_contended(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run a transaction again when a concurrent one wrote the same unique row first
    (e.g. two first posts creating the public timeline node at once): the loser kept
    nothing, so a second run sees the winner's row and succeeds."""
    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(3):
            try:
                return await fn(*args, **kwargs)
            except errors.Contended:
                if attempt == 2:
                    raise
                log.info("%s: a concurrent change won; running it again", fn.__name__)
        raise AssertionError("unreachable")
    return run


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 65536
    max_items_per_node: int = 10000
    max_page_items: int = 50
    # Keep every result page well under Prosody's 512 KiB stanza limit (fact 6).
    max_page_bytes: int = 256 * 1024


def validate_item_id(item_id: str) -> str:
    """Raises BadRequest unless `item_id` is 1..256 characters with no control characters or line breaks."""
    if not item_id or len(item_id) > MAX_ITEM_ID:
        raise errors.BadRequest(f"item ids are 1 to {MAX_ITEM_ID} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for c in item_id):
        raise errors.BadRequest("item ids may not contain control characters or line breaks")
    return item_id


def xmpp_uri(service: str, node: str, item: str | None = None) -> str:
    """An RFC 5122 / XEP-0060 §12.21 URI for a node or an item."""
    uri = f"xmpp:{service}?;node={quote(node, safe='')}"
    return uri + (f";item={quote(item, safe='')}" if item is not None else "")


class _Nobody:
    """The OnlineView of a service without an IM adapter: nobody is online."""

    def is_online(self, bare: str) -> bool:
        return False


class BlogService:
    """The core of xmppblog. Methods take the actor first (STYLE.md §5)."""

    def __init__(self, addressing: Addressing, uow: UnitOfWorkFactory, codec: EntryCodec,
                 clock: Clock, limits: Limits = Limits(),
                 new_id: Callable[[], str] = lambda: secrets.token_hex(6),
                 after_commit: Callable[[], None] = lambda: None,
                 online: OnlineView | None = None) -> None:
        self.addr = addressing
        self._uow = uow
        self._codec = codec
        self._clock = clock
        self.limits = limits
        self._new_id = new_id
        self._after_commit = after_commit
        self._online: OnlineView = online if online is not None else _Nobody()
        self._timeline: Node | None = None

    async def commit(self, uow: UnitOfWork) -> None:
        await uow.commit()
        # Wake the outbox sender: whatever this transaction planned is durable now.
        self._after_commit()

    # ------------------------------------------------------------ helpers

    def owner_of(self, service: str) -> str:
        """The owner of a blog JID. Raises NodeNotFound if it is nobody's blog."""
        owner = self.addr.owner_of(service)
        if owner is None:
            raise errors.NodeNotFound(f"{service} is not a blog on this server")
        return owner

    @property
    def timeline_ref(self) -> NodeRef:
        """The public timeline: the microblog node of the service JID, every public local post."""
        return NodeRef(self.addr.service_jid, NS_MICROBLOG)

    def _check_name(self, ref: NodeRef) -> None:
        if ref == self.timeline_ref:
            return
        self.owner_of(ref.service)
        if ref.node == NS_MICROBLOG:
            return
        if ref.is_comments:
            validate_item_id(ref.parent_item or "")
            return
        raise errors.NodeNotFound(
            f"only {NS_MICROBLOG} and its comments nodes are hosted on blog JIDs")

    def _default_config(self) -> NodeConfig:
        return NodeConfig(max_items=self.limits.max_items_per_node)

    def _config(self, base: NodeConfig, changes: dict[str, object]) -> NodeConfig:
        """`base` with `changes` applied. Raises InvalidOptions on bad values."""
        max_items = changes.get("max_items", base.max_items)
        if not isinstance(max_items, int) or not 1 <= max_items <= self.limits.max_items_per_node:
            raise errors.InvalidOptions(
                f"max_items must be between 1 and {self.limits.max_items_per_node}")
        try:
            return replace(base, **changes)  # type: ignore[arg-type]
        except TypeError as exc:
            raise errors.InvalidOptions(str(exc)) from exc

    @staticmethod
    def _preconditions(node: Node, options: dict[str, object]) -> None:
        for name, wanted in options.items():
            if getattr(node.config, name, wanted) != wanted:
                raise errors.PreconditionNotMet(
                    f"pubsub#{name}", f"the node's {name} is {getattr(node.config, name)}, not {wanted}")

    async def _load(self, uow: UnitOfWork, ref: NodeRef, create: bool = False,
                    options: dict[str, object] | None = None) -> tuple[Node, Node]:
        """The node and the node whose access rules apply to it (itself, or the post's blog).

        Raises:
            NodeNotFound: if it does not exist and may not be created here.
        """
        self._check_name(ref)
        if ref == self.timeline_ref:
            # The timeline node is never deleted nor reconfigured: once it is known to be
            # committed (found, not just created in this transaction), it is loaded once.
            if self._timeline is not None:
                return self._timeline, self._timeline
            found = await uow.nodes.get(ref)
            if found is not None:
                self._timeline = found
                return found, found
            created = await uow.nodes.create(Node(ref, self.addr.service_jid, self._default_config()))
            return created, created
        if ref.is_comments:
            parent, _ = await self._load(uow, ref.parent(), create=False)
            if await uow.items.get(parent, ref.parent_item or "") is None:
                raise errors.NodeNotFound("no such post, so no comments node")
            node = await uow.nodes.get(ref)
            if node is None:
                if not create:
                    raise errors.NodeNotFound("nobody has commented on this post yet")
                node = await uow.nodes.create(Node(ref, parent.owner, self._default_config()))
            return node, parent
        node = await uow.nodes.get(ref)
        if node is None:
            if not create:
                raise errors.NodeNotFound("this user has not posted yet")
            config = self._config(self._default_config(), options or {})
            node = await uow.nodes.create(Node(ref, self.owner_of(ref.service), config))
            log.info("node created: service=%s node=%s", ref.service, ref.node)
        return node, node

    async def _viewer(self, uow: UnitOfWork, access: Node, actor: Actor) -> Viewer:
        if actor.system:
            return Viewer(system=True)
        return await fanout.viewer_of(uow, access, actor.jid)

    async def _recipients(self, uow: UnitOfWork, node: Node, access: Node) -> tuple[str, ...]:
        """Event subscribers who may still see this node now (purge, delete)."""
        return tuple(j for j, d in await fanout.allowed_subscribers(uow, node, access) if d is Delivery.EVENT)

    # ------------------------------------------------------------ publish / retract

    @retry_contended
    async def publish(self, actor: Actor, ref: NodeRef, item_id: str | None, draft: object,
                      options: dict[str, object] | None = None) -> str:
        """Store an entry and plan its notifications (XEP-0060 §7.1, XEP-0277 §3).

        Args:
            actor: the publisher (bare JID as stamped by the host server).
            ref: the node; the microblog node is created on its owner's first publish.
            item_id: the id the client chose, or None to have one assigned.
            draft: a validated entry from the codec's parser.
            options: publish-options (NodeConfig fields): the configuration of a
                node this publish creates, else preconditions (XEP-0060 §7.1.5).

        Returns:
            The item id.

        Raises:
            NodeNotFound, Forbidden, BadRequest, PayloadTooBig and the read refusals
            of `policy.check` for comments.
        """
        if ref == self.timeline_ref:
            raise errors.Forbidden("the public timeline is read-only: it carries every public post here")
        owner = self.owner_of(ref.service)
        if item_id is not None:
            validate_item_id(item_id)
        async with self._uow() as uow:
            if ref.is_comments:
                node, access = await self._load(uow, ref, create=True)
                viewer = await self._viewer(uow, access, actor)
                check(Action.PUBLISH_COMMENT, access.config.access_model, viewer)
            elif actor.jid == owner or actor.system:
                node, access = await self._load(uow, ref, create=True, options=options)
                viewer = await self._viewer(uow, access, actor)
                if options:
                    self._preconditions(node, options)
            else:
                self._check_name(ref)
                existing_node = await uow.nodes.get(ref)
                if existing_node is None:
                    raise errors.Forbidden(self._not_yours(actor, owner))
                node = access = existing_node
                viewer = await self._viewer(uow, access, actor)
                if viewer.affiliation is not Affiliation.PUBLISHER:
                    raise errors.Forbidden(self._not_yours(actor, owner))
            generated = item_id is None  # a fresh random id: no item, and no timeline copy, has it yet
            item_id = item_id or self._new_id()
            existing = None if generated else await uow.items.get(node, item_id)
            if (existing is not None and existing.publisher != actor.jid
                    and viewer.affiliation is not Affiliation.OWNER and not actor.system):
                # T3: an item id never lets one publisher overwrite another's item.
                raise errors.Forbidden("that item id belongs to somebody else's entry")
            now = self._clock.now()
            author = owner if not ref.is_comments else actor.jid
            stamp = Stamp(
                item_id=item_id,
                atom_id=xmpp_uri(ref.service, ref.node, item_id),
                published=existing.published if existing else now,
                updated=now,
                author_jid=author,
                author_name=parse(author).local,
                self_uri=xmpp_uri(ref.service, ref.node, item_id),
                replies_uri=None if ref.is_comments else xmpp_uri(ref.service, ref.comments(item_id).node),
            )
            payload = self._codec.render(draft, stamp)
            if len(payload.encode("utf-8")) > self.limits.max_payload_bytes:
                raise errors.PayloadTooBig(
                    f"entries are limited to {self.limits.max_payload_bytes} bytes")
            await uow.items.put(node, Item(item_id, actor.jid or owner, payload, stamp.published, now),
                                new=existing is None)
            keep = min(node.config.max_items, self.limits.max_items_per_node)
            for dropped in await uow.items.trim(node, keep):
                await self._drop_comments(uow, node, dropped)
            parent_owner = None
            if ref.is_comments:
                parent_item = await uow.items.get(access, ref.parent_item or "")
                parent_owner = parent_item.publisher if parent_item else None
            events = await fanout.plan_post(uow, self.addr, self._online, fanout.Post(
                node, access, item_id, payload, actor.jid or owner, self._codec.text(draft), parent_owner))
            if not ref.is_comments and access.config.access_model is AccessModel.OPEN:
                events += await self._timeline_put(uow, owner, Item(
                    item_id, actor.jid or owner, payload, stamp.published, now), new=generated)
                # indexed in the publishing transaction: search never misses a post
                await uow.search.index(SearchDoc.of(ref, item_id, owner, stamp.published,
                                                    self._codec.text(draft)), new=existing is None)
            for event in events:
                await uow.outbox.add(event)
            recipients = tuple(r for e in events for r in e.recipients)
            await self.commit(uow)
        log.info("published: service=%s node=%s item=%s by=%s recipients=%d%s",
                 ref.service, ref.node, item_id, actor.jid, len(recipients),
                 " (update)" if existing else "")
        return item_id

    def _not_yours(self, actor: Actor, owner: str) -> str:
        if not self.addr.is_local_user(actor.jid):
            return (f"only users of {self.addr.users_domain} have a blog here; "
                    f"this one belongs to {owner}")
        return f"only {owner} may publish here"

    # ------------------------------------------------------------ public timeline

    def _timeline_id(self, owner: str, item_id: str) -> str:
        return f"{parse(owner).local}/{item_id}"

    async def _timeline_put(self, uow: UnitOfWork, owner: str, item: Item, new: bool = False) -> list[OutboxEvent]:
        """Copy a public post onto the public timeline (same transaction) and notify its subscribers."""
        tl, _ = await self._load(uow, self.timeline_ref)
        copy = replace(item, item_id=self._timeline_id(owner, item.item_id))
        await uow.items.put(tl, copy, new=new)
        await uow.items.trim(tl, self.limits.max_items_per_node)
        recipients = await self._recipients(uow, tl, tl)
        if not recipients:
            return []
        return [OutboxEvent(EventKind.ITEM_PUBLISHED, tl.ref.service, tl.ref.node, recipients,
                            item_id=copy.item_id, payload=copy.payload, publisher=owner)]

    async def _timeline_remove(self, uow: UnitOfWork, owner: str, item_ids: Sequence[str] | None) -> None:
        """Take a user's posts (these, or all) off the public timeline, telling its subscribers."""
        tl = await uow.nodes.get(self.timeline_ref)
        if tl is None:
            return
        if item_ids is None:
            ids = [i for i in await uow.items.ids_by_publisher(tl, owner)]
        else:
            ids = [self._timeline_id(owner, i) for i in item_ids]
        recipients = await self._recipients(uow, tl, tl)
        for tl_id in ids:
            if await uow.items.delete(tl, tl_id) and recipients:
                await uow.outbox.add(OutboxEvent(EventKind.ITEM_RETRACTED, tl.ref.service, tl.ref.node,
                                                 recipients, item_id=tl_id))

    async def _drop_comments(self, uow: UnitOfWork, node: Node, item_id: str) -> None:
        """An item left its node (trimmed or retracted): its comments, index entry and copy go too."""
        if node.ref.is_comments or node.ref == self.timeline_ref:
            return
        await uow.search.remove(node.ref, item_id)
        await self._timeline_remove(uow, node.owner, [item_id])
        comments = await uow.nodes.get(node.ref.comments(item_id))
        if comments is not None:
            await uow.nodes.delete(comments)

    async def retract(self, actor: Actor, ref: NodeRef, item_id: str, notify: bool | None) -> None:
        """Delete an item (XEP-0060 §7.2); its publisher or the owner may.

        Raises:
            NodeNotFound, ItemNotFound, Forbidden, BadRequest.
        """
        validate_item_id(item_id)
        async with self._uow() as uow:
            node, access = await self._load(uow, ref)
            item = await uow.items.get(node, item_id)
            if item is None:
                raise errors.ItemNotFound(f"no item {item_id} on this node")
            viewer = await self._viewer(uow, access, actor)
            if item.publisher != actor.jid:
                check(Action.RETRACT_ANY, access.config.access_model, viewer)
            await uow.items.delete(node, item_id)
            await self._drop_comments(uow, node, item_id)  # also its index entry and timeline copy
            recipients: tuple[str, ...] = ()
            if notify or (notify is None and node.config.notify_retract):
                for event in await fanout.plan_retract(uow, node, access, item_id):
                    await uow.outbox.add(event)
                    recipients = event.recipients
            await self.commit(uow)
        log.info("retracted: service=%s node=%s item=%s by=%s notified=%d",
                 ref.service, ref.node, item_id, actor.jid, len(recipients))

    async def purge(self, actor: Actor, ref: NodeRef) -> int:
        """Delete every item of a node (XEP-0060 §8.5); owner only.

        Raises:
            NodeNotFound, Forbidden.
        """
        async with self._uow() as uow:
            node, access = await self._load(uow, ref)
            check(Action.PURGE, access.config.access_model, await self._viewer(uow, access, actor))
            if not ref.is_comments:
                for comments in await uow.nodes.list(ref.service):
                    if comments.ref.is_comments:
                        await uow.nodes.delete(comments)
            count = await uow.items.purge(node)
            if not ref.is_comments:
                await self._timeline_remove(uow, node.owner, None)
                await uow.search.remove(ref)
            recipients = await self._recipients(uow, node, access)
            if recipients:
                await uow.outbox.add(OutboxEvent(EventKind.NODE_PURGED, ref.service, ref.node, recipients))
            await self.commit(uow)
        log.info("purged: service=%s node=%s items=%d by=%s", ref.service, ref.node, count, actor.jid)
        return count

    async def create(self, actor: Actor, ref: NodeRef, options: dict[str, object]) -> None:
        """Create the microblog node explicitly (XEP-0060 §8.1); its owner only.

        Raises:
            Forbidden, NodeNotFound (not a microblog node), Conflict (exists),
            InvalidOptions.
        """
        owner = self.owner_of(ref.service)
        if ref.node != NS_MICROBLOG:
            raise errors.NodeNotFound(f"only {NS_MICROBLOG} can be created; comments nodes come with posts")
        if actor.jid != owner and not actor.system:
            raise errors.Forbidden(self._not_yours(actor, owner))
        async with self._uow() as uow:
            if await uow.nodes.get(ref) is not None:
                raise errors.Conflict("the node already exists")
            await self._load(uow, ref, create=True, options=options)
            await self.commit(uow)

    async def delete_node(self, actor: Actor, ref: NodeRef) -> None:
        """Delete a node with its items and subscriptions (XEP-0060 §8.4); owner only.

        Raises:
            NodeNotFound, Forbidden.
        """
        async with self._uow() as uow:
            node, access = await self._owned(uow, actor, ref, Action.CONFIGURE)
            recipients = await self._recipients(uow, node, access)
            if not ref.is_comments:
                for other in await uow.nodes.list(ref.service):
                    if other.ref.is_comments:
                        await uow.nodes.delete(other)
            await uow.nodes.delete(node)
            if not ref.is_comments:
                await self._timeline_remove(uow, node.owner, None)
                await uow.search.remove(ref)
            if recipients:
                await uow.outbox.add(OutboxEvent(EventKind.NODE_DELETED, ref.service, ref.node, recipients))
            await self.commit(uow)
        log.info("node deleted: service=%s node=%s by=%s", ref.service, ref.node, actor.jid)

    # ------------------------------------------------------------ retrieval

    async def get_items(self, actor: Actor, ref: NodeRef, item_ids: Sequence[str] = (),
                        page: PageRequest = PageRequest(), max_items: int | None = None) -> Page:
        """Items newest first (XEP-0060 §6.5, XEP-0059 paging).

        Raises:
            NodeNotFound, ItemNotFound, and the read refusals of `policy.check`.
        """
        for item_id in item_ids:
            validate_item_id(item_id)
        async with self._uow() as uow:
            node, access = await self._load(uow, ref)
            check(Action.RETRIEVE_ITEMS, access.config.access_model,
                  await self._viewer(uow, access, actor))
            if item_ids:
                found = tuple(await uow.items.get_many(node, item_ids))
                if not found:
                    raise errors.ItemNotFound("no such item on this node")
                return self._fit(Page(found, len(found), None))
            limit = self.limits.max_page_items
            if max_items is not None:
                page = replace(page, max=min(max_items, page.max or max_items))
            result = await uow.items.page(node, page, limit)
        return self._fit(result)

    def _fit(self, page: Page) -> Page:
        """Cut a page at the byte budget, so no result stanza nears 512 KiB."""
        total, kept = 0, list[Item]()
        for item in page.items:
            total += len(item.payload.encode("utf-8"))
            if kept and total > self.limits.max_page_bytes:
                return replace(page, items=tuple(kept), complete=False)
            kept.append(item)
        return page

    async def visible_node(self, actor: Actor, ref: NodeRef) -> Node:
        """The node if it exists and `actor` may read it; NodeNotFound otherwise (T6)."""
        async with self._uow() as uow:
            node, access = await self._load(uow, ref)
            viewer = await self._viewer(uow, access, actor)
            if not may(Action.RETRIEVE_ITEMS, access.config.access_model, viewer):
                raise errors.NodeNotFound("no such node")
            return node

    async def visible_nodes(self, actor: Actor, service: str) -> list[Node]:
        """The microblog node of a blog JID if `actor` may read it (disco#items)."""
        if service == self.addr.service_jid:
            async with self._uow() as uow:
                tl = await uow.nodes.get(self.timeline_ref)
            return [tl] if tl is not None else []
        self.owner_of(service)
        async with self._uow() as uow:
            node = await uow.nodes.get(NodeRef(service, NS_MICROBLOG))
            if node is None:
                return []
            viewer = await self._viewer(uow, node, actor)
            return [node] if may(Action.RETRIEVE_ITEMS, node.config.access_model, viewer) else []

    # ------------------------------------------------------------ subscriptions

    @retry_contended
    async def subscribe(self, actor: Actor, ref: NodeRef, jid: str,
                        delivery: Delivery = Delivery.EVENT) -> Subscription:
        """Subscribe `jid` (XEP-0060 §6.1); pending on authorize nodes.

        Raises:
            InvalidJid (not the requester's own JID), NodeNotFound, and the
            refusals of `policy.check(SUBSCRIBE)`.
        """
        subscriber = str(parse(jid))
        if not actor.system and bare(subscriber) != actor.jid:
            raise errors.InvalidJid("you can only subscribe your own JID")
        async with self._uow() as uow:
            node, access = await self._load(uow, ref, create=True)
            if fanout.is_server(subscriber) and access.config.access_model is not AccessModel.OPEN:
                # Server-level subscriptions re-deliver to anyone on that server: open blogs only.
                raise errors.ClosedNode("this blog is protected: its readers subscribe one by one")
            viewer = await self._viewer(uow, access, Actor(bare(subscriber)) if not actor.system else actor)
            check(Action.SUBSCRIBE, access.config.access_model, viewer)
            existing = await uow.subs.get(node, subscriber)
            if existing is not None and existing.state is not SubState.NONE:
                if delivery is Delivery.IM and existing.delivery is not Delivery.IM:
                    # An IM follow of someone already subscribed by a pubsub client:
                    # one delivery per person, as chat (DESIGN: IM follow by chat/roster).
                    await uow.subs.put(node, subscriber, existing.state, Delivery.IM)
                    await self.commit(uow)
                return replace(existing, delivery=Delivery.IM if delivery is Delivery.IM else existing.delivery)
            state = subscribe_state(access.config.access_model, viewer)
            if ref.is_comments and state is SubState.PENDING:
                # Comments follow their post's blog: approval happens there.
                raise errors.NotSubscribedAccess("subscribe to the blog first and wait for approval")
            await uow.subs.put(node, subscriber, state, delivery)
            if state is SubState.PENDING:
                await uow.outbox.add(OutboxEvent(
                    EventKind.SUBSCRIPTION_PENDING, ref.service, ref.node, (node.owner,),
                    subject=subscriber, state=state.value))
            await self.commit(uow)
        log.info("subscribed: service=%s node=%s jid=%s state=%s", ref.service, ref.node, subscriber, state)
        return Subscription(ref, subscriber, state, delivery)

    async def unsubscribe(self, actor: Actor, ref: NodeRef, jid: str) -> None:
        """End a subscription (XEP-0060 §6.2); the subscriber or the owner may.

        Raises:
            InvalidJid, Forbidden, NodeNotFound, NotSubscribed.
        """
        subscriber = str(parse(jid))
        async with self._uow() as uow:
            node, access = await self._load(uow, ref)
            if bare(subscriber) != actor.jid and not actor.system and actor.jid != access.owner:
                raise errors.Forbidden("you can only unsubscribe your own JID")
            if not await uow.subs.delete(node, subscriber):
                raise errors.NotSubscribed(f"{subscriber} is not subscribed to this node")
            await self.commit(uow)
        log.info("unsubscribed: service=%s node=%s jid=%s by=%s", ref.service, ref.node, subscriber, actor.jid)

    async def subscriptions_of(self, actor: Actor, service: str, node: str | None = None) -> list[Subscription]:
        """The requester's own subscriptions on a blog JID or the service JID (XEP-0060 §5.6)."""
        if service != self.addr.service_jid:
            self.owner_of(service)
        async with self._uow() as uow:
            subs = await uow.subs.for_jid(service, actor.jid)
        return [s for s in subs if node is None or s.ref.node == node]

    async def affiliations_of(self, actor: Actor, service: str,
                              node: str | None = None) -> list[tuple[NodeRef, Affiliation]]:
        """The requester's own affiliations on a blog JID (XEP-0060 §5.7)."""
        owner = self.owner_of(service)
        async with self._uow() as uow:
            if actor.jid == owner:
                mine = [(n.ref, Affiliation.OWNER) for n in await uow.nodes.list(service)]
            else:
                mine = list(await uow.affs.for_jid(service, actor.jid))
        return [(r, a) for r, a in mine if node is None or r.node == node]

    # ------------------------------------------------------------ owner use cases

    async def _owned(self, uow: UnitOfWork, actor: Actor, ref: NodeRef, action: Action) -> tuple[Node, Node]:
        node, access = await self._load(uow, ref)
        check(action, access.config.access_model, await self._viewer(uow, access, actor))
        return node, access

    async def get_config(self, actor: Actor, ref: NodeRef) -> NodeConfig:
        """The node configuration (XEP-0060 §8.2); owner only."""
        async with self._uow() as uow:
            node, _ = await self._owned(uow, actor, ref, Action.CONFIGURE)
            return node.config

    async def configure(self, actor: Actor, ref: NodeRef, changes: dict[str, object]) -> NodeConfig:
        """Change the configuration (XEP-0060 §8.2.4); owner only.

        Args:
            changes: NodeConfig field names to new, already-typed values.

        Raises:
            NodeNotFound, Forbidden, InvalidOptions, Unsupported.
        """
        if ref.is_comments:
            raise errors.Unsupported("config-node", "comments nodes follow their post's blog settings")
        if ref == self.timeline_ref:
            raise errors.Forbidden("the public timeline is configured by the server")
        async with self._uow() as uow:
            node, _ = await self._owned(uow, actor, ref, Action.CONFIGURE)
            config = self._config(node.config, changes)
            node = replace(node, config=config)
            await uow.nodes.update(node)
            for dropped in await uow.items.trim(node, config.max_items):
                await self._drop_comments(uow, node, dropped)
            removed = await self._prune_subscriptions(uow, node)
            if config.access_model is not AccessModel.OPEN:
                # protected posts never appear on the public timeline or in search
                await self._timeline_remove(uow, node.owner, None)
                await uow.search.remove(ref)
            await self.commit(uow)
        log.info("configured: service=%s node=%s access=%s max_items=%d removed_subscriptions=%d",
                 ref.service, ref.node, config.access_model, config.max_items, removed)
        return config

    async def _prune_subscriptions(self, uow: UnitOfWork, access: Node) -> int:
        """Drop subscriptions the current access model no longer allows."""
        removed = 0
        for sub in await uow.subs.for_node(access, SubState.SUBSCRIBED):
            viewer = await self._viewer(uow, access, Actor(bare(sub.jid)))
            server = fanout.is_server(sub.jid) and access.config.access_model is not AccessModel.OPEN
            if server or not may(Action.BE_SUBSCRIBED, access.config.access_model, viewer):
                await uow.subs.delete(access, sub.jid)
                removed += 1
        return removed

    async def get_affiliations(self, actor: Actor, ref: NodeRef) -> dict[str, Affiliation]:
        """All affiliations of a node (XEP-0060 §8.9.1); owner only."""
        async with self._uow() as uow:
            node, access = await self._owned(uow, actor, ref, Action.MANAGE_AFFILIATIONS)
            affs = dict(await uow.affs.for_node(node))
            affs[node.owner] = Affiliation.OWNER
            return affs

    async def set_affiliations(self, actor: Actor, ref: NodeRef, changes: Sequence[tuple[str, str]]) -> None:
        """Modify affiliations (XEP-0060 §8.9.2); owner only, all or nothing.

        Raises:
            NodeNotFound, Forbidden, InvalidJid, BadRequest.
        """
        parsed: list[tuple[str, Affiliation]] = []
        for jid, value in changes:
            try:
                aff = Affiliation(value)
            except ValueError:
                raise errors.BadRequest(f"unknown affiliation {value[:32]!r}") from None
            parsed.append((bare(jid), aff))
        async with self._uow() as uow:
            node, _ = await self._owned(uow, actor, ref, Action.MANAGE_AFFILIATIONS)
            for jid, aff in parsed:
                if jid == node.owner or aff is Affiliation.OWNER:
                    raise errors.Forbidden("a blog has exactly one owner: its user")
            for jid, aff in parsed:
                await uow.affs.set(node, jid, aff)
            await self._prune_subscriptions(uow, node)
            await self.commit(uow)
        log.info("affiliations changed: service=%s node=%s changes=%s", ref.service, ref.node, parsed)

    async def get_subscriptions(self, actor: Actor, ref: NodeRef) -> list[Subscription]:
        """All subscriptions of a node (XEP-0060 §8.8.1); owner only."""
        async with self._uow() as uow:
            node, _ = await self._owned(uow, actor, ref, Action.MANAGE_SUBSCRIPTIONS)
            return list(await uow.subs.for_node(node))

    async def set_subscriptions(self, actor: Actor, ref: NodeRef, changes: Sequence[tuple[str, str]]) -> None:
        """Modify subscriptions (XEP-0060 §8.8.2); owner only.

        `subscribed` approves, `none` removes; subscribers are told (§8.8.4).
        """
        parsed: list[tuple[str, SubState]] = []
        for jid, value in changes:
            try:
                state = SubState(value)
            except ValueError:
                raise errors.BadRequest(f"unknown subscription state {value[:32]!r}") from None
            parsed.append((str(parse(jid)), state))
        async with self._uow() as uow:
            node, _ = await self._owned(uow, actor, ref, Action.MANAGE_SUBSCRIPTIONS)
            for jid, state in parsed:
                await self._set_subscription(uow, node, jid, state)
            await self.commit(uow)

    async def status(self, uow: UnitOfWork, blog: str) -> str:
        """The presence status line of a blog JID: its latest post's text."""
        ref = NodeRef(blog, NS_MICROBLOG)
        latest = await uow.feed.latest(ref)
        return roster.status_of(await uow.nodes.get(ref), self._codec.summary(latest.payload) if latest else None)

    async def _set_subscription(self, uow: UnitOfWork, node: Node, jid: str, state: SubState) -> bool:
        current = await uow.subs.get(node, jid)
        if state is SubState.NONE:
            changed = await uow.subs.delete(node, jid)
        else:
            changed = current is None or current.state is not state
            await uow.subs.put(node, jid, state)
        if changed and not node.ref.is_comments and bare(jid) == jid:
            # The same decision answers a pending roster request, and an approved
            # IM follower gets the blog JID in their roster (core/roster.py).
            contact = await uow.contacts.get(node.ref.service, jid)
            if state is SubState.SUBSCRIBED and contact.pending_in:
                contact, events = roster.welcome(contact, await self.status(uow, node.ref.service))
            elif state is SubState.SUBSCRIBED and current is not None and current.delivery is Delivery.IM:
                contact, events = roster.ask_presence(contact, force=True)
            elif state is SubState.NONE:
                contact, events = roster.refuse(contact)
            else:
                events = []
            await uow.contacts.save(contact)
            for event in events:
                await uow.outbox.add(event)
        if changed:
            await uow.outbox.add(OutboxEvent(
                EventKind.SUBSCRIPTION_CHANGED, node.ref.service, node.ref.node, (jid,),
                subject=jid, state=state.value))
            log.info("subscription set: service=%s node=%s jid=%s state=%s",
                     node.ref.service, node.ref.node, jid, state)
        return changed

    async def authorize(self, actor: Actor, ref: NodeRef, jid: str, allow: bool) -> bool:
        """Answer a pending subscription (XEP-0060 §8.6); owner only.

        Returns:
            False if there was no pending request for `jid` (nothing changed).
        """
        subscriber = str(parse(jid))
        async with self._uow() as uow:
            node, _ = await self._owned(uow, actor, ref, Action.MANAGE_SUBSCRIPTIONS)
            current = await uow.subs.get(node, subscriber)
            if current is None or current.state is not SubState.PENDING:
                return False
            await self._set_subscription(uow, node, subscriber,
                                         SubState.SUBSCRIBED if allow else SubState.NONE)
            await self.commit(uow)
        return True

    async def pending(self, actor: Actor, service: str) -> dict[str, list[str]]:
        """Pending subscribers per node of a blog (XEP-0060 §8.7); owner only."""
        owner = self.owner_of(service)
        if actor.jid != owner and not actor.system:
            raise errors.Forbidden("only the owner may see pending subscriptions")
        async with self._uow() as uow:
            out: dict[str, list[str]] = {}
            for node in await uow.nodes.list(service):
                subs = await uow.subs.for_node(node, SubState.PENDING)
                if subs:
                    out[node.ref.node] = [s.jid for s in subs]
            return out

    async def resend_pending(self, actor: Actor, ref: NodeRef) -> int:
        """Send the owner one approval form per pending subscriber (XEP-0060 §8.7)."""
        async with self._uow() as uow:
            node, _ = await self._owned(uow, actor, ref, Action.GET_PENDING)
            subs = await uow.subs.for_node(node, SubState.PENDING)
            for s in subs:
                await uow.outbox.add(OutboxEvent(
                    EventKind.SUBSCRIPTION_PENDING, ref.service, ref.node, (node.owner,),
                    subject=s.jid, state=s.state.value))
            await self.commit(uow)
        return len(subs)

    # ------------------------------------------------------------ presence

    async def set_presence_subscription(self, blog: str, contact: str, subscribed: bool) -> None:
        """Record whether `contact` has a presence subscription to `blog` (presence access)."""
        self.owner_of(blog)
        async with self._uow() as uow:
            await uow.contacts.set_presence(blog, bare(contact), subscribed)
            if not subscribed:
                node = await uow.nodes.get(NodeRef(blog, NS_MICROBLOG))
                if node is not None and node.config.access_model is AccessModel.PRESENCE:
                    await self._prune_subscriptions(uow, node)
            await self.commit(uow)
        log.info("presence subscription: blog=%s contact=%s subscribed=%s", blog, contact, subscribed)

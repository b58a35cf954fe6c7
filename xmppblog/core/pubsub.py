# SPDX-License-Identifier: AGPL-3.0-or-later
"""PubsubService: nodes, items, subscriptions and affiliations of the blogs hosted here
(core layer, stdlib only).

Each public method is one use case in one transaction. It decides with
`policy` (who may do what), `visibility` (who may see what) and `consent`
(who asked for what), changes state through the repositories, and emits a
domain event per change (core/events.py). It sends nothing and projects
nothing itself: notifications, the public timeline, the search index and
presence grants are projections of those events, run in the same
transaction before the commit. The `*_in(tx, …)` steps let other use cases
(a chat follow, an approval) do the same work inside their own transaction.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from . import errors, fanout
from .addressing import Addressing
from .consent import MAX_CHANGES_PER_REQUEST, MAX_PENDING_PER_NODE, owner_may_set
from .discovery import Discovery
from .events import (
    AccessChanged,
    AffiliationChanged,
    Cause,
    ConsentChanged,
    ItemPublished,
    ItemRetracted,
    NodeDeleted,
    NodePurged,
    SubscriptionChanged,
)
from .jid import bare, parse, stored_bare
from .model import (
    NS_MICROBLOG,
    AccessModel,
    Actor,
    Affiliation,
    Delivery,
    FoundPost,
    Item,
    Node,
    NodeConfig,
    NodeRef,
    Page,
    PageRequest,
    Stamp,
    Subscription,
    SubState,
)
from .policy import Action, Viewer, check, may, roster_request_state, subscribe_state
from .ports import Clock, EntryCodec
from .transactions import Transactions, Tx, retry_contended
from .uri import xmpp_uri
from .visibility import NodeMap, may_read, validate_item_id, viewer_for, viewer_of

log = logging.getLogger(__name__)

#: read refusals: a node the requester may not read looks absent in disco (T6)
READ_REFUSALS = (errors.Forbidden, errors.ClosedNode, errors.PresenceSubscriptionRequired,
                 errors.NotSubscribedAccess, errors.PendingSubscription)


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 65536
    max_items_per_node: int = 10000
    max_page_items: int = 50
    #: keep every result page well under the host's stanza limit (THREATS.md fact 6)
    max_page_bytes: int = 256 * 1024


def fitting(items: Sequence[Item], budget: int) -> int:
    """How many of `items`, in order, fit in `budget` bytes of payload (at least one): a page of
    items, or of an archive, is one burst of stanzas and must stay far below the host's limit."""
    total = 0
    for n, item in enumerate(items):
        total += len(item.payload.encode("utf-8"))
        if n and total > budget:
            return n
    return len(items)


class PubsubService:
    """XEP-0060 on blog JIDs and the public timeline. Methods take the actor first (STYLE.md §5)."""

    def __init__(self, addr: Addressing, transactions: Transactions, codec: EntryCodec, clock: Clock,
                 limits: Limits = Limits(), new_id: Callable[[], str] = lambda: secrets.token_hex(6),
                 discovery: Discovery = Discovery()) -> None:
        self.addr = addr
        self.nodes = NodeMap(addr)
        self.discovery = discovery
        self._tx = transactions
        self._codec = codec
        self._clock = clock
        self.limits = limits
        self._new_id = new_id

    @property
    def timeline_ref(self) -> NodeRef:
        return self.nodes.timeline_ref

    def owner_of(self, service: str) -> str:
        return self.nodes.owner_of(service)

    def default_config(self) -> NodeConfig:
        return NodeConfig(max_items=self.limits.max_items_per_node)

    def _config(self, base: NodeConfig, changes: dict[str, object]) -> NodeConfig:
        """`base` with `changes` applied. Raises InvalidOptions on bad values."""
        max_items = changes.get("max_items", base.max_items)
        if not isinstance(max_items, int) or not 1 <= max_items <= self.limits.max_items_per_node:
            raise errors.InvalidOptions(f"max_items must be between 1 and {self.limits.max_items_per_node}")
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

    async def _unclaimed(self, tx: Tx, node: Node) -> bool:
        """A blog node its owner has not shaped: on the defaults and empty, as a follower's
        subscription made it before the first post (subscribe_in). The owner's create or first
        publish-options set it up as if it were theirs from the start; any other node keeps
        XEP-0060's answers (conflict, precondition-not-met)."""
        return node.config == self.default_config() and await tx.feed.latest(node.ref) is None

    async def _create(self, tx: Tx, ref: NodeRef, owner: str, config: NodeConfig) -> Node:
        node = await tx.nodes.create(Node(ref, owner, config))
        log.info("node created: service=%s node=%s", ref.service, ref.node)
        return node

    async def blog_node(self, tx: Tx, ref: NodeRef, create: bool = False,
                        options: dict[str, object] | None = None) -> Node:
        """A blog's microblog node (or the public timeline), created if asked.

        Raises:
            NodeNotFound: it does not exist and `create` is False.
        """
        self.nodes.check_name(ref)
        node = await tx.nodes.get(ref)
        if node is not None:
            return node
        if not create:
            raise errors.NodeNotFound("this user has not posted yet")
        owner = self.addr.service_jid if self.nodes.is_copies(ref) else self.owner_of(ref.service)
        return await self._create(tx, ref, owner, self._config(self.default_config(), options or {}))

    async def _comments_node(self, tx: Tx, ref: NodeRef, access: Node) -> tuple[Node, Item]:
        """A post's comments (or attachments) node, created with its first item (it exists, empty,
        before), and the post."""
        post = await tx.items.get(access, ref.post_item or "")
        if post is None:
            raise errors.NodeNotFound("no such post")
        node = await tx.nodes.get(ref)
        return (node if node is not None else await self._create(tx, ref, access.owner, self.default_config())), post

    # ------------------------------------------------------------ publish / retract

    @retry_contended
    async def publish(self, actor: Actor, ref: NodeRef, item_id: str | None, draft: object,
                      options: dict[str, object] | None = None) -> str:
        """Store an entry; its projections plan notifications and copies (XEP-0060 §7.1, XEP-0277 §3).

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
        async with self._tx() as tx:
            item_id = await self.publish_in(tx, actor, ref, item_id, draft, options)
            await tx.commit()
        return item_id

    async def publish_in(self, tx: Tx, actor: Actor, ref: NodeRef, item_id: str | None, draft: object,
                         options: dict[str, object] | None = None, quoted: bool | None = None) -> str:
        """`publish` inside an open transaction; `quoted`: for a repost, whether the post it
        quotes carries its author's consent (core/discovery.py)."""
        if self.nodes.is_copies(ref):
            raise errors.Forbidden("the public timeline and the firehose are read-only: they carry copies "
                                   "of the posts here")
        if ref.is_attachments:
            raise errors.InvalidPayload("an attachments node holds <attachments/> items (XEP-0470), not entries")
        owner = self.owner_of(ref.service)
        if item_id is not None:
            validate_item_id(item_id)
        node, access, viewer, parent = await self._publishable(tx, actor, ref, owner, options)
        generated = item_id is None  # a fresh random id: no item (and no timeline copy) has it yet
        item_id = item_id or self._new_id()
        existing = None if generated else await tx.items.get(node, item_id)
        if (existing is not None and existing.publisher != actor.jid
                and viewer.affiliation is not Affiliation.OWNER and not actor.system):
            # T3: an item id never lets one publisher overwrite another's item.
            raise errors.Forbidden("that item id belongs to somebody else's entry")
        now = self._clock.now()
        author = actor.jid or owner
        stamp = Stamp(
            item_id=item_id,
            atom_id=xmpp_uri(ref.service, ref.node, item_id),
            published=existing.published if existing else now,
            updated=now,
            author_jid=author,
            author_name=parse(author).local,
            self_uri=xmpp_uri(ref.service, ref.node, item_id),
            replies_uri=None if ref.is_comments else xmpp_uri(ref.service, ref.comments(item_id).node),
            discoverable=self.discovery.carries(
                node, access, await self._author_blog(tx, author, access), existing,
                existing is not None and self._codec.facts(existing.payload).discoverable, quoted),
        )
        payload = self._codec.render(draft, stamp)
        if len(payload.encode("utf-8")) > self.limits.max_payload_bytes:
            raise errors.PayloadTooBig(f"entries are limited to {self.limits.max_payload_bytes} bytes")
        item = Item(item_id, author, payload, stamp.published, now)
        await tx.items.put(node, item, new=existing is None)
        await self._trim(tx, node, access, min(node.config.max_items, self.limits.max_items_per_node))
        await tx.emit(ItemPublished(node, access, item, self._codec.text(draft), existing is None,
                                    parent.publisher if parent else None, discoverable=stamp.discoverable))
        log.info("published: service=%s node=%s item=%s by=%s%s", ref.service, ref.node, item_id, actor.jid,
                 " (update)" if existing else "")
        return item_id

    async def _author_blog(self, tx: Tx, author: str, access: Node) -> Node | None:
        """The blog of a post's author when that is not `access`'s owner (a publisher affiliate
        writing on someone's blog): their consent counts too (core/discovery.py)."""
        if author == access.owner:
            return None
        blog = self.addr.blog_of(author)
        return await tx.nodes.get(NodeRef(blog, NS_MICROBLOG)) if blog is not None else None

    async def _publishable(self, tx: Tx, actor: Actor, ref: NodeRef, owner: str, options: dict[str, object] | None
                           ) -> tuple[Node, Node, Viewer, Item | None]:
        """(node, access node, the actor's standing, the post a comment answers) of a node `actor`
        may publish to, creating the node when its first post needs it."""
        if ref.is_comments:
            access = await self.blog_node(tx, ref.parent())
            viewer = await viewer_for(tx, access, actor)
            check(Action.PUBLISH_COMMENT, access.config.access_model, viewer)
            if not actor.system and owner in await tx.im.blockers_of(actor.jid, [owner]):
                raise errors.Forbidden(f"{owner} does not accept replies from you")
            node, post = await self._comments_node(tx, ref, access)
            return node, access, viewer, post
        if actor.jid == owner or actor.system:
            self.nodes.check_name(ref)
            blog = await tx.nodes.get(ref)
            if blog is None:
                blog = await self._create(tx, ref, owner, self._config(self.default_config(), options or {}))
            elif options and await self._unclaimed(tx, blog):
                await self.configure_in(tx, actor, ref, options)
                blog = await self.blog_node(tx, ref)
            elif options:
                self._preconditions(blog, options)
            return blog, blog, await viewer_for(tx, blog, actor), None
        found = await tx.nodes.get(ref)
        if found is None:
            raise errors.Forbidden(self._not_yours(actor, owner))
        standing = await viewer_for(tx, found, actor)
        if not may(Action.PUBLISH, found.config.access_model, standing):
            raise errors.Forbidden(self._not_yours(actor, owner))
        return found, found, standing, None

    @retry_contended
    async def attach(self, actor: Actor, ref: NodeRef, item_id: str | None, payload: str) -> str:
        """Publish one's attachments to a post (XEP-0470): on the post's attachments node, by
        whoever may read the post, as the one item whose id is their own bare JID (a new one
        replaces it). Its subscribers hear of it; it is no post (no timeline, search or chat copy).

        Args:
            item_id: must be the actor's bare JID; None: it is.
            payload: the serialised <attachments/> element (the adapter checked it).

        Raises:
            NodeNotFound (no such post), the read refusals of `policy.check`, BadRequest (an
            item id that is not the publisher's bare JID), Forbidden (blocked), PayloadTooBig.
        """
        if ref.attached_item is None:
            raise errors.InvalidPayload("<attachments/> items go to a post's attachments node (XEP-0470)")
        if len(payload.encode("utf-8")) > self.limits.max_payload_bytes:
            raise errors.PayloadTooBig(f"items are limited to {self.limits.max_payload_bytes} bytes")
        async with self._tx() as tx:
            _, access, _ = await self.nodes.readable(tx, actor, ref)
            if actor.anonymous or actor.system:
                raise errors.Forbidden("attachments are published by a person, under their own JID")
            if (item_id or actor.jid) != actor.jid:
                raise errors.BadRequest("the id of an attachments item is its publisher's bare JID (XEP-0470)")
            if access.owner in await tx.im.blockers_of(actor.jid, [access.owner]):
                raise errors.Forbidden(f"{access.owner} does not accept attachments from you")
            node, _ = await self._comments_node(tx, ref, access)
            existing = await tx.items.get(node, actor.jid)
            now = self._clock.now()
            item = Item(actor.jid, actor.jid, payload, existing.published if existing else now, now)
            await tx.items.put(node, item, new=existing is None)
            await tx.emit(ItemPublished(node, access, item, "", existing is None))
            await tx.commit()
        log.info("attachments published: service=%s node=%s by=%s", ref.service, ref.node, actor.jid)
        return actor.jid

    def _not_yours(self, actor: Actor, owner: str) -> str:
        if not self.addr.is_local_user(actor.jid):
            return f"only users of {self.addr.users_domain} have a blog here; this one belongs to {owner}"
        return f"only {owner} may publish here"

    async def _trim(self, tx: Tx, node: Node, access: Node, keep: int) -> None:
        for dropped in await tx.items.trim(node, keep):
            await self._gone(tx, node, access, dropped, notify=False)

    async def _gone(self, tx: Tx, node: Node, access: Node, item_id: str, notify: bool) -> None:
        """An item left its node: its comments and attachments nodes go with it, and its
        projections hear of it."""
        if not node.ref.of_post and not self.nodes.is_copies(node.ref):
            for ref in (node.ref.comments(item_id), node.ref.attachments(item_id)):
                of_post = await tx.nodes.get(ref)
                if of_post is not None:
                    await tx.nodes.delete(of_post)
        await tx.emit(ItemRetracted(node, access, item_id, notify))

    async def retract(self, actor: Actor, ref: NodeRef, item_ids: Sequence[str], notify: bool | None) -> None:
        """Delete items (XEP-0060 §7.2), all or none; each by its publisher or the owner.

        Raises:
            NodeNotFound, ItemNotFound, Forbidden, BadRequest.
        """
        for item_id in item_ids:
            validate_item_id(item_id)
        async with self._tx() as tx:
            await self.retract_in(tx, actor, ref, item_ids, notify)
            await tx.commit()

    async def retract_in(self, tx: Tx, actor: Actor, ref: NodeRef, item_ids: Sequence[str],
                         notify: bool | None) -> None:
        node, access, viewer = await self.nodes.readable(tx, actor, ref)
        if node is None:
            raise errors.ItemNotFound("no such item on this node")
        for item_id in item_ids:
            item = await tx.items.get(node, item_id)
            if item is None:
                raise errors.ItemNotFound(f"no item {item_id[:64]} on this node")
            if item.publisher != actor.jid:
                check(Action.RETRACT_ANY, access.config.access_model, viewer)
            await tx.items.delete(node, item_id)
            await self._gone(tx, node, access, item_id,
                             notify=bool(notify) or (notify is None and node.config.notify_retract))
        log.info("retracted: service=%s node=%s items=%s by=%s", ref.service, ref.node, list(item_ids), actor.jid)

    async def purge(self, actor: Actor, ref: NodeRef) -> int:
        """Delete every item of a node (XEP-0060 §8.5); owner only.

        Raises:
            NodeNotFound, Forbidden.
        """
        async with self._tx() as tx:
            node, access = await self._owned(tx, actor, ref, Action.PURGE)
            if not ref.of_post:
                for other in await tx.nodes.list(ref.service):
                    if other.ref.of_post:
                        await tx.nodes.delete(other)
            count = await tx.items.purge(node)
            await tx.emit(NodePurged(node, access))
            await tx.commit()
        log.info("purged: service=%s node=%s items=%d by=%s", ref.service, ref.node, count, actor.jid)
        return count

    async def create(self, actor: Actor, ref: NodeRef, options: dict[str, object]) -> None:
        """Create the microblog node explicitly (XEP-0060 §8.1); its owner only.

        Raises:
            Forbidden (not the owner, or not a node that may be created), Conflict (exists),
            InvalidOptions.
        """
        owner = self.owner_of(ref.service)
        if ref.of_post:
            self.nodes.check_name(ref)
            if actor.jid != owner and not actor.system:
                raise errors.Forbidden(self._not_yours(actor, owner))
            # A post's comments and attachments (XEP-0470) nodes exist with the post: clients
            # that create them before they publish the post (Libervia does, with
            # createIfNewNode) carry on at `conflict` (XEP-0060 §8.1.2).
            raise errors.Conflict("a post's comments and attachments nodes exist as soon as the post does")
        if ref.node != NS_MICROBLOG:
            # XEP-0060 §8.1.3: nobody may create other nodes here (forbidden); item-not-found
            # is not a create error, and clients took it for a missing blog.
            raise errors.Forbidden(f"only {NS_MICROBLOG} can be created here; comments nodes come with posts")
        if actor.jid != owner and not actor.system:
            raise errors.Forbidden(self._not_yours(actor, owner))
        async with self._tx() as tx:
            node = await tx.nodes.get(ref)
            if node is None:
                await self.blog_node(tx, ref, create=True, options=options)
            elif await self._unclaimed(tx, node):
                await self.configure_in(tx, actor, ref, options)
            else:
                raise errors.Conflict("the node already exists")
            await tx.commit()

    async def delete_node(self, actor: Actor, ref: NodeRef) -> None:
        """Delete a node with its items and subscriptions (XEP-0060 §8.4); owner only.

        Raises:
            NodeNotFound, Forbidden.
        """
        async with self._tx() as tx:
            await self.delete_node_in(tx, actor, ref)
            await tx.commit()

    async def delete_node_in(self, tx: Tx, actor: Actor, ref: NodeRef) -> None:
        """`delete_node` inside an open transaction (an account deletion)."""
        node, access = await self._owned(tx, actor, ref, Action.DELETE)
        await tx.emit(NodeDeleted(node, access))
        if not ref.of_post:
            for other in await tx.nodes.list(ref.service):
                if other.ref.of_post:
                    await tx.nodes.delete(other)
        await tx.nodes.delete(node)
        log.info("node deleted: service=%s node=%s by=%s", ref.service, ref.node, actor.jid)

    # ------------------------------------------------------------ retrieval

    async def get_items(self, actor: Actor, ref: NodeRef, item_ids: Sequence[str] = (),
                        page: PageRequest = PageRequest(), max_items: int | None = None) -> Page:
        """Items newest first (XEP-0060 §6.5, XEP-0059 paging), as `actor` may see them now.

        Raises:
            NodeNotFound, ItemNotFound, and the read refusals of `policy.check`.
        """
        for item_id in item_ids:
            validate_item_id(item_id)
        async with self._tx() as tx:
            node, access, _ = await self.nodes.readable(tx, actor, ref)
            if item_ids:
                found = tuple(await tx.items.get_many(node, item_ids)) if node is not None else ()
                found = await self.still_visible(tx, node, found, actor)
                if not found:
                    raise errors.ItemNotFound("no such item on this node")
                return self._fit(Page(found, len(found), None))
            if node is None:
                return Page((), 0, None)
            limit = self.limits.max_page_items
            if max_items is not None:
                page = replace(page, max=min(max_items, page.max or max_items))
            result = await tx.items.page(node, page, limit)
            kept = await self.still_visible(tx, node, result.items, actor)
        return self._fit(replace(result, items=kept) if len(kept) != len(result.items) else result)

    async def still_visible(self, tx: Tx, node: Node | None, items: Sequence[Item],
                             actor: Actor) -> tuple[Item, ...]:
        """Public-timeline copies whose original `actor` may see now (the rule again, at serve time:
        still public, and not on a blog that banned them)."""
        if node is None or not self.nodes.is_copies(node.ref):
            return tuple(items)
        readable: dict[NodeRef, bool] = {}
        kept = []
        for item in items:
            found = await self.nodes.original(tx, item)
            if found is None:
                continue
            blog = found[0]
            if blog.ref not in readable:
                readable[blog.ref] = actor.anonymous or may_read(blog, await viewer_for(tx, blog, actor))
            if readable[blog.ref]:
                kept.append(item)
        return tuple(kept)

    def _fit(self, page: Page) -> Page:
        """Cut a page at the byte budget, so no result stanza nears the host's limit."""
        n = fitting(page.items, self.limits.max_page_bytes)
        return page if n == len(page.items) else replace(page, items=page.items[:n], complete=False)

    async def originals(self, copies: Sequence[Item]) -> list[FoundPost]:
        """The blog posts public-timeline copies stand for, those still public."""
        async with self._tx() as tx:
            found = [await self.nodes.original(tx, copy) for copy in copies]
        return [FoundPost(blog.ref, item) for blog, item in (f for f in found if f is not None)]

    async def visible_node(self, actor: Actor, ref: NodeRef) -> Node:
        """The node if `actor` may read it; a node they may not read looks absent (disco, T6).

        A post's comments node is there, empty, as soon as the post is.
        """
        async with self._tx() as tx:
            try:
                node, access, _ = await self.nodes.readable(tx, actor, ref)
            except READ_REFUSALS:
                raise errors.NodeNotFound("no such node") from None
        return node if node is not None else Node(ref, access.owner, access.config)

    async def visible_nodes(self, actor: Actor, service: str) -> list[Node]:
        """The nodes of a blog JID (or the service JID) `actor` may read (disco#items)."""
        refs = ([self.timeline_ref, self.nodes.firehose_ref] if service == self.addr.service_jid
                else [NodeRef(service, NS_MICROBLOG)])
        nodes = []
        for ref in refs:
            with contextlib.suppress(errors.NodeNotFound):  # one they may not read is not listed
                nodes.append(await self.visible_node(actor, ref))
        return nodes

    # ------------------------------------------------------------ subscriptions

    @retry_contended
    async def subscribe(self, actor: Actor, ref: NodeRef, jid: str,
                        delivery: Delivery = Delivery.EVENT) -> Subscription:
        """Subscribe `jid` (XEP-0060 §6.1); pending on authorize nodes.

        Raises:
            InvalidJid (not the requester's own JID), NodeNotFound, Forbidden (blocked),
            and the refusals of `policy.check(SUBSCRIBE)`.
        """
        subscriber = str(parse(jid))
        if not actor.system and bare(subscriber) != actor.jid:
            raise errors.InvalidJid("you can only subscribe your own JID")
        async with self._tx() as tx:
            sub = await self.subscribe_in(tx, ref, subscriber, delivery)
            await tx.commit()
        return sub

    async def subscribe_in(self, tx: Tx, ref: NodeRef, subscriber: str, delivery: Delivery,
                           by_roster: bool = False) -> Subscription:
        """Subscribe a JID that asked for it itself (XEP-0060, chat follow, or roster request).

        Args:
            by_roster: the request is a presence subscription: on a `presence` blog it
                waits for the owner (policy.roster_request_state).
        """
        self.nodes.check_name(ref)
        who = stored_bare(subscriber)
        if ref.of_post:
            # read access to the blog first: whether a post exists is its business (no oracle)
            _, access, _ = await self.nodes.readable(tx, Actor(who), ref)
            node, _ = await self._comments_node(tx, ref, access)
        else:
            # following someone before their first post makes their node, on the defaults
            access = node = await self.blog_node(tx, ref, create=True)
        model = access.config.access_model
        if fanout.is_server(subscriber) and model is not AccessModel.OPEN:
            # Server-level subscriptions re-deliver to anyone on that server: open blogs only.
            raise errors.ClosedNode("this blog is protected: its readers subscribe one by one")
        if who != access.owner and access.owner in await tx.im.blockers_of(who, [access.owner]):
            raise errors.Forbidden(f"{access.owner} does not accept followers from you")
        viewer = await viewer_of(tx, access, who)
        if by_roster:
            state = roster_request_state(model, viewer)
        else:
            check(Action.SUBSCRIBE, model, viewer)
            state = subscribe_state(model, viewer)
        existing = await tx.subs.get(node, subscriber)
        if existing is not None and existing.state is not SubState.NONE:
            # Following by chat or roster and subscribing with a XEP-0060 client are two channels
            # a person may ask for each: they get a copy on each (a chat client shows the message,
            # a XEP-0277 client needs the event).
            channels = existing.delivery.plus(delivery)
            if channels is not existing.delivery:
                await tx.subs.put(node, subscriber, existing.state, channels)
                log.info("subscribed: service=%s node=%s jid=%s channels=%s", ref.service, ref.node, subscriber,
                         channels)
            return replace(existing, delivery=channels)
        if ref.of_post and state is SubState.PENDING:
            # Comments follow their post's blog: approval happens there.
            raise errors.NotSubscribedAccess("subscribe to the blog first and wait for approval")
        if state is SubState.PENDING and await tx.subs.count(node, SubState.PENDING) >= MAX_PENDING_PER_NODE:
            raise errors.Forbidden("too many follow requests are waiting for this blog's owner; try later")
        await tx.subs.put(node, subscriber, state, delivery)
        await tx.emit(SubscriptionChanged(node, access, subscriber, SubState.NONE, state, Cause.SUBSCRIBER))
        log.info("subscribed: service=%s node=%s jid=%s state=%s", ref.service, ref.node, subscriber, state)
        return Subscription(ref, subscriber, state, delivery)

    async def unsubscribe(self, actor: Actor, ref: NodeRef, jid: str) -> None:
        """End a subscription (XEP-0060 §6.2); the subscriber or the owner may.

        Raises:
            InvalidJid, Forbidden, NodeNotFound, NotSubscribed.
        """
        subscriber = str(parse(jid))
        async with self._tx() as tx:
            # a chat or roster follow of the same JID stays (it is another channel, ended by chat)
            if not await self.unsubscribe_in(tx, actor, ref, subscriber, Delivery.EVENT):
                raise errors.NotSubscribed(f"{subscriber} is not subscribed to this node")
            await tx.commit()

    async def unsubscribe_in(self, tx: Tx, actor: Actor, ref: NodeRef, subscriber: str,
                             channel: Delivery = Delivery.BOTH) -> bool:
        """End one subscription, or only its `channel` when it has both; False if there was none."""
        access = await self.nodes.access_node(tx, ref)
        node = await tx.nodes.get(ref) if ref.of_post else access
        own = bare(subscriber) == actor.jid
        if not own and not actor.system:
            check(Action.UNSUBSCRIBE_OTHER, access.config.access_model, await viewer_for(tx, access, actor))
        current = await tx.subs.get(node, subscriber) if node is not None and node.db_id else None
        if current is None or node is None:
            return False
        left = current.delivery.minus(channel)
        if left is not None:
            await tx.subs.put(node, subscriber, current.state, left)
            log.info("unsubscribed: service=%s node=%s jid=%s channel=%s (still %s)", ref.service, ref.node,
                     subscriber, channel, left)
            return True
        await tx.subs.delete(node, subscriber)
        await tx.emit(SubscriptionChanged(node, access, subscriber, current.state, SubState.NONE,
                                          Cause.SUBSCRIBER if own else Cause.OWNER))
        log.info("unsubscribed: service=%s node=%s jid=%s by=%s", ref.service, ref.node, subscriber, actor.jid)
        return True

    async def unsubscribe_all_in(self, tx: Tx, actor: Actor, ref: NodeRef,
                                 channel: Delivery = Delivery.BOTH) -> bool:
        """End every subscription of the actor (any resource) to `ref`, or only their `channel`
        where they have both; False if there was none."""
        removed = False
        for sub in await tx.subs.for_jid(ref.service, actor.jid):
            if sub.ref == ref:
                removed |= await self.unsubscribe_in(tx, actor, ref, sub.jid, channel)
        return removed

    async def subscriptions_of(self, actor: Actor, service: str, node: str | None = None) -> list[Subscription]:
        """The requester's own subscriptions on a blog JID or the service JID (XEP-0060 §5.6)."""
        if service != self.addr.service_jid:
            self.owner_of(service)
        async with self._tx() as tx:
            subs = await tx.subs.for_jid(service, actor.jid)
        return [s for s in subs if node is None or s.ref.node == node]

    async def affiliations_of(self, actor: Actor, service: str,
                              node: str | None = None) -> list[tuple[NodeRef, Affiliation]]:
        """The requester's own affiliations on a blog JID (XEP-0060 §5.7)."""
        owner = self.owner_of(service)
        async with self._tx() as tx:
            if actor.jid == owner:
                mine = [(n.ref, Affiliation.OWNER) for n in await tx.nodes.list(service)]
            else:
                mine = list(await tx.affs.for_jid(service, actor.jid))
        return [(r, a) for r, a in mine if node is None or r.node == node]

    # ------------------------------------------------------------ owner use cases

    async def _owned(self, tx: Tx, actor: Actor, ref: NodeRef, action: Action) -> tuple[Node, Node]:
        access = await self.nodes.access_node(tx, ref)
        check(action, access.config.access_model, await viewer_for(tx, access, actor))
        node = await tx.nodes.get(ref) if ref.of_post else access
        if node is None or not node.db_id:
            raise errors.NodeNotFound("nobody has commented on this post yet")
        return node, access

    async def get_config(self, actor: Actor, ref: NodeRef) -> NodeConfig:
        """The node configuration (XEP-0060 §8.2); owner only. A comments node's is its blog's,
        whether or not anybody commented yet."""
        async with self._tx() as tx:
            if ref.of_post:
                return (await self._comments_owned(tx, actor, ref)).config
            node, _ = await self._owned(tx, actor, ref, Action.CONFIGURE)
            return node.config

    async def _comments_owned(self, tx: Tx, actor: Actor, ref: NodeRef) -> Node:
        """The blog whose settings a comments node follows, for its owner; Forbidden for others."""
        access = await self.nodes.access_node(tx, ref)
        check(Action.CONFIGURE, access.config.access_model, await viewer_for(tx, access, actor))
        return access

    async def configure(self, actor: Actor, ref: NodeRef, changes: dict[str, object]) -> NodeConfig:
        """Change the configuration (XEP-0060 §8.2.4); owner only.

        Args:
            changes: NodeConfig field names to new, already-typed values.

        Raises:
            NodeNotFound, Forbidden, InvalidOptions, Unsupported.
        """
        if ref.of_post:
            async with self._tx() as tx:
                blog = await self._comments_owned(tx, actor, ref)
            if any(getattr(blog.config, k, object()) != v for k, v in changes.items()):
                raise errors.Unsupported("config-node", "a comments node follows its blog's settings: "
                                                        "configure the blog instead")
            return blog.config  # the settings it already has: nothing to change
        if self.nodes.is_copies(ref):
            raise errors.Forbidden("the public timeline and the firehose are configured by the server")
        async with self._tx() as tx:
            config = await self.configure_in(tx, actor, ref, changes)
            await tx.commit()
        return config

    async def configure_in(self, tx: Tx, actor: Actor, ref: NodeRef, changes: dict[str, object],
                           create: bool = False) -> NodeConfig:
        if create and await tx.nodes.get(ref) is None and (actor.system or actor.jid == self.owner_of(ref.service)):
            node = await self.blog_node(tx, ref, create=True, options=changes)
            return node.config
        node, _ = await self._owned(tx, actor, ref, Action.CONFIGURE)
        before = node.config
        config = self._config(before, changes)
        if self.discovery.withdraws(node, replace(node, config=config)):
            config = replace(config, consent_withdrawn_at=self._clock.now())
        node = replace(node, config=config)
        await tx.nodes.update(node)
        await self._trim(tx, node, node, config.max_items)
        removed = await self._prune(tx, node)
        if config.access_model is not before.access_model:
            await tx.emit(AccessChanged(node, before.access_model))
        if config.discoverable != before.discoverable:
            await tx.emit(ConsentChanged(node, before.discoverable))
        log.info("configured: service=%s node=%s access=%s max_items=%d removed_subscriptions=%d",
                 ref.service, ref.node, config.access_model, config.max_items, removed)
        return config

    async def _prune(self, tx: Tx, access: Node, jids: set[str] | None = None) -> int:
        """Drop subscriptions the access model and affiliations no longer allow (on the blog and
        its comments nodes): subscribed ones that may not be subscribed now, and any of an outcast.
        `jids`: only these bare JIDs' (their affiliation changed, nothing else did)."""
        removed = 0
        model = access.config.access_model
        for node in [access] + [n for n in await tx.nodes.list(access.ref.service) if n.ref.of_post]:
            for sub in await tx.subs.for_node(node):
                if jids is not None and stored_bare(sub.jid) not in jids:
                    continue
                viewer = await viewer_of(tx, access, stored_bare(sub.jid))
                if sub.state is SubState.SUBSCRIBED:
                    gone = ((fanout.is_server(sub.jid) and model is not AccessModel.OPEN)
                            or not may(Action.BE_SUBSCRIBED, model, viewer))
                else:
                    gone = viewer.affiliation is Affiliation.OUTCAST
                if gone:
                    await tx.subs.delete(node, sub.jid)
                    await tx.emit(SubscriptionChanged(node, access, sub.jid, sub.state, SubState.NONE, Cause.SYSTEM))
                    removed += 1
        return removed

    async def get_affiliations(self, actor: Actor, ref: NodeRef) -> dict[str, Affiliation]:
        """All affiliations of a node (XEP-0060 §8.9.1); owner only."""
        async with self._tx() as tx:
            node, _ = await self._owned(tx, actor, ref, Action.MANAGE_AFFILIATIONS)
            affs = {node.owner: Affiliation.OWNER}
            affs.update(await tx.affs.for_node(node))
            return affs

    async def set_affiliations(self, actor: Actor, ref: NodeRef, changes: Sequence[tuple[str, str]]) -> None:
        """Modify affiliations (XEP-0060 §8.9.2); owner only, all or nothing.

        Raises:
            NodeNotFound, Forbidden, InvalidJid, BadRequest.
        """
        parsed = [(bare(jid), Affiliation(value)) for jid, value in _changes(changes, Affiliation, "affiliation")]
        async with self._tx() as tx:
            await self.set_affiliations_in(tx, actor, ref, parsed)
            await tx.commit()
        log.info("affiliations changed: service=%s node=%s changes=%d", ref.service, ref.node, len(parsed))

    async def set_affiliations_in(self, tx: Tx, actor: Actor, ref: NodeRef,
                                  changes: Sequence[tuple[str, Affiliation]]) -> None:
        node, _ = await self._owned(tx, actor, ref, Action.MANAGE_AFFILIATIONS)
        for jid, aff in changes:
            if jid == node.owner or aff is Affiliation.OWNER:
                raise errors.Forbidden("a blog has exactly one owner: its user")
        for jid, aff in changes:
            before = await tx.affs.get(node, jid)
            if before is aff:
                continue
            await tx.affs.set(node, jid, aff)
            await tx.emit(AffiliationChanged(node, jid, before, aff))
        await self._prune(tx, node, {jid for jid, _ in changes})

    async def get_subscriptions(self, actor: Actor, ref: NodeRef) -> list[Subscription]:
        """All subscriptions of a node (XEP-0060 §8.8.1); owner only."""
        async with self._tx() as tx:
            node, _ = await self._owned(tx, actor, ref, Action.MANAGE_SUBSCRIPTIONS)
            return list(await tx.subs.for_node(node))

    async def set_subscriptions(self, actor: Actor, ref: NodeRef, changes: Sequence[tuple[str, str]]) -> None:
        """Modify subscriptions (XEP-0060 §8.8.2); owner only, all or nothing.

        `subscribed` approves a JID that asked (pending) and `none` removes; an owner
        cannot subscribe a JID that never asked (core/consent.py).

        Raises:
            NodeNotFound, Forbidden, BadRequest, SubscriptionsRefused.
        """
        parsed = [(jid, SubState(value)) for jid, value in _changes(changes, SubState, "subscription")]
        async with self._tx() as tx:
            node, access = await self._owned(tx, actor, ref, Action.MANAGE_SUBSCRIPTIONS)
            refused = []
            for jid, state in parsed:
                current = await tx.subs.get(node, jid)
                if not owner_may_set(current.state if current else SubState.NONE, state):
                    refused.append((jid, state.value))
            if refused:
                raise errors.SubscriptionsRefused(refused)
            for jid, state in parsed:
                await self._owner_sets(tx, node, access, jid, state)
            await tx.commit()

    async def _owner_sets(self, tx: Tx, node: Node, access: Node, jid: str, state: SubState) -> bool:
        current = await tx.subs.get(node, jid)
        before = current.state if current else SubState.NONE
        if before is state:
            return False
        if state is SubState.NONE:
            await tx.subs.delete(node, jid)
        else:
            await tx.subs.put(node, jid, state)
        await tx.emit(SubscriptionChanged(node, access, jid, before, state, Cause.OWNER))
        log.info("subscription set: service=%s node=%s jid=%s state=%s", node.ref.service, node.ref.node, jid, state)
        return True

    async def remove_subscriber_in(self, tx: Tx, actor: Actor, ref: NodeRef, who: str) -> bool:
        """The owner ends what a bare JID holds on their blog: its subscriptions to the blog and
        its comments nodes (the owner's decision: they are told, XEP-0060 §8.8.4) and a member or
        publisher affiliation (an outcast stays one). False: it held none of these."""
        if await tx.nodes.get(ref) is None:
            return False
        _, access = await self._owned(tx, actor, ref, Action.MANAGE_SUBSCRIPTIONS)
        changed = False
        for sub in await tx.subs.for_jid(ref.service, who):
            node = await tx.nodes.get(sub.ref)
            if node is not None:
                changed |= await self._owner_sets(tx, node, access, sub.jid, SubState.NONE)
        if await tx.affs.get(access, who) in (Affiliation.MEMBER, Affiliation.PUBLISHER):
            await self.set_affiliations_in(tx, actor, ref, [(who, Affiliation.NONE)])
            changed = True
        return changed

    async def authorize(self, actor: Actor, ref: NodeRef, jid: str, allow: bool) -> bool:
        """Answer a pending subscription (XEP-0060 §8.6); owner only.

        Returns:
            False if there was no pending request for `jid` (nothing changed).
        """
        async with self._tx() as tx:
            changed = await self.authorize_in(tx, actor, ref, str(parse(jid)), allow)
            await tx.commit()
        return changed

    async def authorize_in(self, tx: Tx, actor: Actor, ref: NodeRef, jid: str, allow: bool) -> bool:
        node, access = await self._owned(tx, actor, ref, Action.MANAGE_SUBSCRIPTIONS)
        current = await tx.subs.get(node, jid)
        if current is None or current.state is not SubState.PENDING:
            return False
        return await self._owner_sets(tx, node, access, jid, SubState.SUBSCRIBED if allow else SubState.NONE)

    async def pending(self, actor: Actor, service: str) -> dict[str, list[str]]:
        """Pending subscribers per node of a blog (XEP-0060 §8.7); owner only."""
        async with self._tx() as tx:
            return await self.pending_in(tx, actor, service)

    async def pending_in(self, tx: Tx, actor: Actor, service: str) -> dict[str, list[str]]:
        owner = self.owner_of(service)
        if actor.jid != owner and not actor.system:
            raise errors.Forbidden("only the owner may see pending subscriptions")
        out: dict[str, list[str]] = {}
        for node in await tx.nodes.list(service):
            subs = await tx.subs.for_node(node, SubState.PENDING)
            if subs:
                out[node.ref.node] = [s.jid for s in subs]
        return out

    async def resend_pending(self, actor: Actor, ref: NodeRef) -> int:
        """Send the owner one approval form per pending subscriber (XEP-0060 §8.7)."""
        async with self._tx() as tx:
            node, _ = await self._owned(tx, actor, ref, Action.GET_PENDING)
            subs = await tx.subs.for_node(node, SubState.PENDING)
            for s in subs:
                await fanout.ask_owner(tx, node, s.jid)
            await tx.commit()
        return len(subs)



def _changes(changes: Sequence[tuple[str, str]], kind: type, what: str) -> list[tuple[str, str]]:
    """Owner changes with normalised JIDs and known values, at most MAX_CHANGES_PER_REQUEST.

    Raises:
        BadRequest, InvalidJid.
    """
    if len(changes) > MAX_CHANGES_PER_REQUEST:
        raise errors.BadRequest(f"change at most {MAX_CHANGES_PER_REQUEST} {what}s per request")
    out = []
    for jid, value in changes:
        try:
            kind(value)
        except ValueError:
            raise errors.BadRequest(f"unknown {what} {value[:32]!r}") from None
        out.append((str(parse(jid)), value))
    return out

# SPDX-License-Identifier: AGPL-3.0-or-later
"""The one visibility rule: who may see a node's items, and whether a node exists for them
(core layer, stdlib only).

Every exit asks here, at serve time: pubsub items and notifications, presence
status lines, chat timelines, search and whois, replies and mentions, reposts,
the public timeline, HTTP pages, API and feeds. `may_read` is the rule;
`NodeMap.readable` applies it before anything about the node's items is
looked up, so a reader who may not see a blog learns nothing about which
posts or comments exist on it (no existence oracle): they get the same
refusal whatever they ask for below the blog node.
"""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator

from .addressing import Addressing
from .errors import BadRequest, Forbidden, NodeNotFound
from .jid import stored_bare
from .model import NS_FIREHOSE, NS_MICROBLOG, AccessModel, Actor, Affiliation, Item, Node, NodeConfig, NodeRef, SubState
from .policy import NOBODY, Action, Viewer, check, may
from .ports import Repos

SYSTEM_VIEWER = Viewer(system=True)
MAX_ITEM_ID = 256


def may_read(access: Node, viewer: Viewer) -> bool:
    """May this viewer see the items of a node whose access rules are `access`'s?

    A remote node's local cache holds what its origin publishes to anyone: servers
    only ever follow open nodes (core/remote_feeds.py), so it reads as open.
    """
    if access.remote:
        return viewer.affiliation is not Affiliation.OUTCAST
    return may(Action.RETRIEVE_ITEMS, access.config.access_model, viewer)


def check_read(access: Node, viewer: Viewer) -> None:
    """`may_read`, raising the XEP-0060 refusal (closed-node, presence-subscription-required…)."""
    if not access.remote:
        check(Action.RETRIEVE_ITEMS, access.config.access_model, viewer)


def is_public(access: Node) -> bool:
    """Readable by anybody at all: what the public timeline, search, feeds and reposts may carry."""
    return may_read(access, NOBODY)


async def viewer_of(tx: Repos, access: Node, jid: str) -> Viewer:
    """The standing of a bare JID on a node (owner, affiliation, subscription, approved presence)."""
    if not jid:
        return NOBODY
    if jid == access.owner:
        return Viewer(Affiliation.OWNER, SubState.SUBSCRIBED, True)
    model = access.config.access_model
    aff = await tx.affs.get(access, jid)
    state = await tx.subs.state_of(access, jid) if model is AccessModel.AUTHORIZE else SubState.NONE
    presence = model is AccessModel.PRESENCE and await tx.contacts.has_presence(access.ref.service, jid)
    return Viewer(aff, state, presence)


async def viewer_for(tx: Repos, access: Node, actor: Actor) -> Viewer:
    if actor.system:
        return SYSTEM_VIEWER
    return await viewer_of(tx, access, actor.jid)


async def may_see(tx: Repos, access: Node, jid: str) -> bool:
    """The rule for one stored JID (a subscriber, a contact, a mentioned user)."""
    return may_read(access, await viewer_of(tx, access, stored_bare(jid)))


async def may_read_ref(tx: Repos, actor: Actor, ref: NodeRef, seen: dict[NodeRef, bool]) -> bool:
    """The visibility rule for a node of a list across nodes (a comments node follows its
    blog; an unknown node is unreadable), decided once per node in `seen`."""
    if ref not in seen:
        access = await tx.nodes.get(ref.parent() if ref.of_post else ref)
        seen[ref] = access is not None and may_read(access, await viewer_for(tx, access, actor))
    return seen[ref]


def validate_item_id(item_id: str) -> str:
    """Raises BadRequest unless `item_id` is 1..256 characters with no control characters or line breaks."""
    if not item_id or len(item_id) > MAX_ITEM_ID:
        raise BadRequest(f"item ids are 1 to {MAX_ITEM_ID} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") for c in item_id):
        raise BadRequest("item ids may not contain control characters or line breaks")
    return item_id


class NodeMap:
    """Which nodes this server hosts, and whose rules apply to each.

    A blog JID hosts its owner's microblog node and one comments node and one attachments
    node (XEP-0470) per post (both follow their post's blog); the service JID hosts the public
    timeline and the firehose (copies of posts, read-only, each copy under its blog's rules);
    remote caches are keyed by their origin's JID.
    """

    def __init__(self, addr: Addressing) -> None:
        self.addr = addr

    @property
    def timeline_ref(self) -> NodeRef:
        """The public timeline: the microblog node of the service JID, every public local post."""
        return NodeRef(self.addr.service_jid, NS_MICROBLOG)

    @property
    def firehose_ref(self) -> NodeRef:
        """The firehose: every discoverable public local post, for other servers' indexes
        (core/discovery.py)."""
        return NodeRef(self.addr.service_jid, NS_FIREHOSE)

    def is_copies(self, ref: NodeRef) -> bool:
        """Whether `ref` is a node of the service JID's, whose items are copies of blog posts
        (`user/id`): the public timeline or the firehose. Nobody publishes to them."""
        return ref == self.timeline_ref or ref == self.firehose_ref

    def own_blog(self, actor: Actor) -> NodeRef:
        """The actor's own microblog node. Raises Forbidden for JIDs of other servers."""
        blog = self.addr.blog_of(actor.jid)
        if blog is None:
            raise Forbidden(f"only users of {self.addr.users_domain} have a blog here")
        return NodeRef(blog, NS_MICROBLOG)

    def owner_of(self, service: str) -> str:
        """The owner of a blog JID. Raises NodeNotFound if it is nobody's blog."""
        owner = self.addr.owner_of(service)
        if owner is None:
            raise NodeNotFound(f"{service} is not a blog on this server")
        return owner

    def check_name(self, ref: NodeRef) -> None:
        """Raises NodeNotFound for a node name no JID of ours hosts."""
        if self.is_copies(ref):
            return
        self.owner_of(ref.service)
        if ref.node == NS_MICROBLOG:
            return
        if ref.is_comments:
            validate_item_id(ref.parent_item or "")
            return
        if ref.is_attachments and ref.attached_item is not None:
            validate_item_id(ref.attached_item)
            return
        raise NodeNotFound(f"only {NS_MICROBLOG} and the comments and attachments nodes (XEP-0470) of its posts "
                           "are hosted on blog JIDs")

    async def access_node(self, tx: Repos, ref: NodeRef) -> Node:
        """The node whose access rules apply to `ref` (the blog's for a post's comments or attachments node).

        Raises:
            NodeNotFound: the blog has no node (its owner never posted).
        """
        self.check_name(ref)
        blog = await tx.nodes.get(ref.parent() if ref.of_post else ref)
        if blog is None:
            if self.is_copies(ref):
                return Node(ref, self.addr.service_jid, NodeConfig())
            raise NodeNotFound("this user has not posted yet")
        return blog

    async def readable(self, tx: Repos, actor: Actor, ref: NodeRef) -> tuple[Node | None, Node, Viewer]:
        """(node, access node, viewer) of a node `actor` may read.

        Read access to the blog is decided first, so nobody who may not read it
        learns whether a post or a comments node exists (no existence oracle).
        A post's comments and attachments nodes exist, empty, as soon as the post does: the node
        is None until somebody comments or attaches something.

        Raises:
            NodeNotFound, and the read refusals of `policy.check`.
        """
        access = await self.access_node(tx, ref)
        viewer = await viewer_for(tx, access, actor)
        check_read(access, viewer)
        if not ref.of_post:
            return (access if access.db_id else None), access, viewer
        if await tx.items.get(access, ref.post_item or "") is None:
            raise NodeNotFound("no such post")
        return await tx.nodes.get(ref), access, viewer

    async def original(self, tx: Repos, copy: Item) -> tuple[Node, Item] | None:
        """The blog and post a copy (`user/id`, core/timeline.py) stands for, if it is still public."""
        local, sep, item_id = copy.item_id.partition("/")
        if not sep:
            return None
        blog = await tx.nodes.get(NodeRef(f"{local}@{self.addr.service_jid}", NS_MICROBLOG))
        if blog is None or not is_public(blog):
            return None
        return blog, Item(item_id, copy.publisher, copy.payload, copy.published, copy.updated)


async def all_items(tx: Repos, node: Node, batch: int = 100) -> AsyncIterator[Item]:
    """Every item of a node, oldest first, a batch at a time (a re-opened blog's restore)."""
    ids = list(await tx.items.ids_oldest_first(node))
    position = {item_id: n for n, item_id in enumerate(ids)}
    for at in range(0, len(ids), batch):
        for item in sorted(await tx.items.get_many(node, ids[at:at + batch]), key=lambda i: position[i.item_id]):
            yield item

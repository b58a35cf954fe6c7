# SPDX-License-Identifier: AGPL-3.0-or-later
"""Value types of the core (no I/O, no XML).

Nodes are keyed by `NodeRef(service, node)`: the blog JID that hosts them and
the node name. Items are keyed by (NodeRef, item id), so an item id can never
reach across nodes (T3).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar
from urllib.parse import quote_plus, unquote_plus

from ..protocol import ATTACHMENTS_PREFIX as ATTACHMENTS_PREFIX
from ..protocol import COMMENTS_PREFIX as COMMENTS_PREFIX
from ..protocol import NS_FIREHOSE as NS_FIREHOSE
from ..protocol import NS_MICROBLOG as NS_MICROBLOG


class AccessModel(enum.StrEnum):
    OPEN = "open"
    PRESENCE = "presence"
    WHITELIST = "whitelist"
    AUTHORIZE = "authorize"


class Affiliation(enum.StrEnum):
    OWNER = "owner"
    PUBLISHER = "publisher"
    MEMBER = "member"
    NONE = "none"
    OUTCAST = "outcast"


class SubState(enum.StrEnum):
    SUBSCRIBED = "subscribed"
    PENDING = "pending"
    NONE = "none"


class Delivery(enum.StrEnum):
    """How a subscriber receives posts: XEP-0060 events, chat messages (IM followers), or both
    when they asked for each (a chat or roster follow and a XEP-0060 subscription): one copy
    per channel asked for, each of which they can end on its own."""

    EVENT = "event"
    IM = "im"
    BOTH = "both"

    @property
    def im(self) -> bool:
        return self is not Delivery.EVENT

    @property
    def events(self) -> bool:
        return self is not Delivery.IM

    def plus(self, asked: Delivery) -> Delivery:
        """The channels once `asked` is added."""
        return self if self is asked else Delivery.BOTH

    def minus(self, ended: Delivery) -> Delivery | None:
        """The channel left once `ended` is withdrawn; None when the subscription ends (its only
        channel, or every one)."""
        if self is Delivery.BOTH and ended is not Delivery.BOTH:
            return Delivery.IM if ended is Delivery.EVENT else Delivery.EVENT
        return None


#: the rest of an attachments node name: xmpp:SERVICE?;node=NODE;item=ITEM
_ATTACHED = re.compile(r"xmpp:([^?;]+)\?;node=([^;]+);item=([^;]+)")


@dataclass(frozen=True, slots=True)
class NodeRef:
    service: str
    node: str

    @property
    def is_comments(self) -> bool:
        return self.node.startswith(COMMENTS_PREFIX)

    @property
    def parent_item(self) -> str | None:
        """For a comments node, the id of the post it belongs to."""
        return self.node[len(COMMENTS_PREFIX):] if self.is_comments else None

    def comments(self, item_id: str) -> NodeRef:
        return NodeRef(self.service, COMMENTS_PREFIX + item_id)

    @property
    def is_attachments(self) -> bool:
        """A XEP-0470 attachments node name (whether it names a post of this blog: `attached_item`)."""
        return self.node.startswith(ATTACHMENTS_PREFIX)

    @property
    def attached_item(self) -> str | None:
        """For the attachments node of a post of this JID's microblog node, the post's id; None for
        any other name. One name per post: the form Libervia builds (`attachments`), so no other
        spelling of the same URI makes a second node."""
        if not self.is_attachments:
            return None
        m = _ATTACHED.fullmatch(self.node, len(ATTACHMENTS_PREFIX))
        if m is None:
            return None
        service, node, item = (unquote_plus(g) for g in m.groups())
        if service != self.service or node != NS_MICROBLOG or self.attachments(item) != self:
            return None
        return item

    def attachments(self, item_id: str) -> NodeRef:
        """The XEP-0470 attachments node of a post of this JID's microblog node: the prefix and the
        post's xmpp: URI as Libervia 0.9 builds it (sat.tools.common.uri.buildXMPPUri: each part
        quote_plus'd, '@' kept)."""
        uri = (f"xmpp:{quote_plus(self.service).replace('%40', '@')}?;node={quote_plus(NS_MICROBLOG)}"
               f";item={quote_plus(item_id)}")
        return NodeRef(self.service, ATTACHMENTS_PREFIX + uri)

    @property
    def of_post(self) -> bool:
        """A node of one post (its comments or its attachments), under its blog's rules."""
        return self.is_comments or self.is_attachments

    @property
    def post_item(self) -> str | None:
        """For a node of one post, the post's id (None: not such a node, or not a valid name)."""
        return self.parent_item if self.is_comments else self.attached_item

    def parent(self) -> NodeRef:
        return NodeRef(self.service, NS_MICROBLOG)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    access_model: AccessModel = AccessModel.OPEN
    max_items: int = 10000
    notify_retract: bool = True
    title: str = ""
    #: the owner's choice for network-wide indexes (core/discovery.py); None: the admin's default
    discoverable: bool | None = None
    #: when the owner last withdrew (consent off, or the blog no longer public): posts from
    #: before never carry consent again, edited or not
    consent_withdrawn_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Node:
    ref: NodeRef
    owner: str
    config: NodeConfig
    db_id: int = 0
    remote: bool = False  # a local cache of another server's node


@dataclass(frozen=True, slots=True)
class RemoteSub:
    """A subscription held at another pubsub service: the consent record spamguard checks."""

    service: str
    node: str
    subscriber: str
    state: SubState


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    publisher: str
    payload: str
    published: datetime
    updated: datetime


@dataclass(frozen=True, slots=True)
class Subscription:
    ref: NodeRef
    jid: str
    state: SubState
    delivery: Delivery = Delivery.EVENT


@dataclass(frozen=True, slots=True)
class Contact:
    """One row of the component's roster (RFC 6121 terms, from the blog JID's side)."""

    blog: str
    contact: str
    subscribed: bool = False   # 'from': the contact gets the blog's presence
    sub_to: bool = False       # 'to': the blog gets the contact's presence
    pending_in: bool = False   # the contact asked; the owner has not answered
    pending_out: bool = False  # we asked for the contact's presence; no answer yet


@dataclass(frozen=True, slots=True)
class Stamp:
    """What the service decides about an entry before it is stored (XEP-0277 §3)."""

    item_id: str
    atom_id: str
    published: datetime
    updated: datetime
    author_jid: str
    author_name: str
    self_uri: str
    replies_uri: str | None
    #: the entry carries the author's consent to network-wide indexes, under the signature
    discoverable: bool = False


@dataclass(frozen=True, slots=True)
class FoundPost:
    """A post with the node it lives on (timelines, search, short-id lookups)."""

    ref: NodeRef
    item: Item


@dataclass(frozen=True, slots=True)
class Scope:
    """Where to look for posts by id prefix (core/posting.py): each field narrows, None does not.

    A narrowing for the lookup, so that look-alike ids elsewhere cannot fill its page; whether
    the actor may read a post found is still the visibility rule's to say.
    """

    service: str | None = None     # on nodes of this JID
    node: str | None = None        # on nodes of this name
    follower: str | None = None    # on nodes this bare JID is subscribed to
    publisher: str | None = None   # published by this bare JID
    open_only: bool = False        # posts and comments of open blogs, and remote caches
    exact: bool = False            # the whole id, not a prefix


@dataclass(frozen=True, slots=True)
class PageRequest:
    """XEP-0059 request on a newest-first item list."""

    max: int | None = None
    after: str | None = None
    before: str | None = None  # "" asks for the last page
    index: int | None = None


#: nodes holding more items than this are not counted for each page (no <count/>,
#: no index past it): counting 100,000 index entries made every page slow
PAGE_COUNT_CAP = 1_000


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[Item, ...]
    count: int | None  # None: more than PAGE_COUNT_CAP (XEP-0059 makes <count/> optional)
    first_index: int | None
    complete: bool = True


class EventKind(enum.StrEnum):
    ITEM_PUBLISHED = "item_published"
    ITEM_RETRACTED = "item_retracted"
    NODE_PURGED = "node_purged"
    NODE_DELETED = "node_deleted"
    SUBSCRIPTION_PENDING = "subscription_pending"
    SUBSCRIPTION_CHANGED = "subscription_changed"
    #: a post delivered as a chat message; `subject` marks why (see Marker)
    IM_POST = "im_post"
    #: a presence stanza from a blog JID; `state` is its type ('available', 'subscribe', …),
    #: `payload` the status text
    PRESENCE = "presence"


class Marker(enum.StrEnum):
    """Why an IM follower gets a post; rendered at the start of the chat body."""

    FOLLOW = "follow"
    TRACK = "track"
    MENTION = "mention"
    REPLY = "reply"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One planned notification: serialised once, addressed to each recipient."""

    kind: EventKind
    sender: str
    node: str
    recipients: tuple[str, ...]
    item_id: str | None = None
    payload: str | None = None
    publisher: str | None = None
    subject: str | None = None  # the subscriber JID for subscription events
    state: str | None = None    # a subscription state, a presence type, or EDITED (an IM_POST)


#: `OutboxEvent.state` of a chat copy of an edited post: the copy says so (im/text.py im_body)
EDITED = "edited"


@dataclass(frozen=True, slots=True)
class OutboxDelivery:
    """One row of the outbox, as the sender drains it."""

    row_id: int
    event_id: int
    recipient: str
    attempts: int
    event: OutboxEvent = field(compare=False)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BulkDelivery:
    """A planned notification whose local recipients are handed over together (the fast path).

    `event.recipients` are those still to hand over; local deliveries are never
    retried one by one (no bounce can name them).
    """

    event_id: int
    event: OutboxEvent
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryTally:
    """What became of notifications to one server: `server` is a recipient's domain, or '' for
    this server's own users (core/status.py sums and judges these)."""

    server: str
    delivered: int = 0      # handed over (to another server: and not bounced since)
    pending: int = 0        # not sent yet
    retrying: int = 0       # bounced with a temporary error; sent again at `next_try`
    failed: int = 0         # bounced for good, given up, or too large to send
    next_try: datetime | None = None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks. `jid` is the normalised bare JID stamped by the host server."""

    jid: str
    system: bool = False

    SYSTEM: ClassVar[Actor]
    ANONYMOUS: ClassVar[Actor]

    @property
    def anonymous(self) -> bool:
        return not self.jid and not self.system


Actor.SYSTEM = Actor("", system=True)
#: a reader with no JID at all (HTTP): sees what is public, nothing more
Actor.ANONYMOUS = Actor("")

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Typed domain errors (core layer).

They name what went wrong in xmppblog's own terms and carry no XMPP condition
and no HTTP status: `pubsub/errors.py` and `http/` map them, once each.
"""

from __future__ import annotations


class BlogError(Exception):
    """Base of every error the core raises on purpose.

    Attributes:
        text: a short human-readable explanation safe to show to the requester.
    """

    def __init__(self, text: str = "") -> None:
        super().__init__(text or self.__class__.__name__)
        self.text = text


class NodeNotFound(BlogError):
    """The node does not exist, or existence is private and the requester may not know."""


class ItemNotFound(BlogError):
    """The item does not exist on the node."""


class Forbidden(BlogError):
    """The requester lacks the affiliation needed for this action."""


class ClosedNode(BlogError):
    """The node is whitelist-only and the requester is not on the list."""


class PresenceSubscriptionRequired(BlogError):
    """Presence access model and the requester has no presence subscription."""


class NotSubscribedAccess(BlogError):
    """Authorize access model and the requester is not an approved subscriber."""


class PendingSubscription(BlogError):
    """Authorize access model and the requester's subscription awaits approval."""


class NotSubscribed(BlogError):
    """Unsubscribe (or subscription options) for a JID that is not subscribed."""


class InvalidJid(BlogError):
    """A JID is malformed, or names somebody the requester may not act for."""


class InvalidPayload(BlogError):
    """The payload is not a valid item for this node (e.g. not an Atom entry)."""


class PayloadTooBig(BlogError):
    """The payload exceeds the configured size limit."""


class BadRequest(BlogError):
    """The request is malformed in a way no more specific error describes."""


class ItemRequired(BlogError):
    """A request that needs an item id came without one."""


class NodeIdRequired(BlogError):
    """A request that needs a node name came without one."""


class InstantNodesUnsupported(NodeIdRequired):
    """A create without a node name: this service makes no instant nodes (XEP-0060 §8.1.3)."""


class InvalidOptions(BlogError):
    """A submitted configuration form carries an unknown field or a bad value."""


class Conflict(BlogError):
    """The request conflicts with the state of the node (e.g. a unique key)."""


class Contended(Conflict):
    """A concurrent transaction wrote the same row first (a unique key raced); nothing of
    this one was kept, so running it again is safe (`retry_contended`)."""


class PreconditionNotMet(BlogError):
    """Publish-options did not match the node configuration (XEP-0060 §7.1.5)."""

    def __init__(self, field: str, text: str = "") -> None:
        super().__init__(text or f"precondition not met: {field}")
        self.field = field


class Unsupported(BlogError):
    """A pubsub feature the service does not implement."""

    def __init__(self, feature: str, text: str = "") -> None:
        super().__init__(text or f"{feature} is not supported")
        self.feature = feature


class StorageUnavailable(BlogError):
    """The database failed; the request changed nothing and may be retried."""


class RemoteUnavailable(BlogError):
    """Another server did not answer, or answered with an error (never passed on verbatim).

    `condition`: the error condition it answered with, '' for no answer (for our own decisions).
    """

    def __init__(self, text: str = "", condition: str = "") -> None:
        super().__init__(text)
        self.condition = condition


class NoMicroblog(BlogError):
    """A JID names nobody whose microblog we can follow."""


class DroppedEntry(BlogError):
    """A remote entry refused on its own (forged author, bad id…); `reason` is the drop counter."""

    def __init__(self, reason: str, text: str = "") -> None:
        super().__init__(text or reason)
        self.reason = reason


class SubscriptionsRefused(BlogError):
    """Owner changes to subscriptions that the subscribers never asked for (XEP-0060 §8.8.2.4).

    `refused`: the (JID, state) pairs that were not applied; nothing was.
    """

    def __init__(self, refused: list[tuple[str, str]], text: str = "") -> None:
        super().__init__(text or "a subscription can only be approved for a JID that asked for it")
        self.refused = refused


class ResourceConstraint(BlogError):
    """The answer would be larger than this server ever sends; ask for less (RSM, fewer items)."""

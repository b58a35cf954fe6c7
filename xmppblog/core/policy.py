# SPDX-License-Identifier: AGPL-3.0-or-later
"""Who may do what: affiliation x action x access model (core layer, no I/O).

The table follows XEP-0060 §4.1 (affiliations) and §4.5 (access models), in
the spirit of Prosody's util/pubsub.lua capabilities. Each check either
returns (allowed) or raises the domain error whose XMPP mapping is the one
XEP-0060 prescribes for that refusal.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import (
    BlogError,
    ClosedNode,
    Forbidden,
    NotSubscribedAccess,
    PendingSubscription,
    PresenceSubscriptionRequired,
)
from .model import AccessModel, Affiliation, SubState


class Action(enum.StrEnum):
    RETRIEVE_ITEMS = "retrieve-items"
    SUBSCRIBE = "subscribe"
    BE_SUBSCRIBED = "be-subscribed"
    PUBLISH = "publish"
    PUBLISH_COMMENT = "publish-comment"
    RETRACT_ANY = "retract-any"
    CREATE = "create"
    CONFIGURE = "configure"
    PURGE = "purge"
    DELETE = "delete"
    MANAGE_AFFILIATIONS = "manage-affiliations"
    MANAGE_SUBSCRIPTIONS = "manage-subscriptions"
    GET_PENDING = "get-pending"
    UNSUBSCRIBE_OTHER = "unsubscribe-other"


OWNER_ONLY = frozenset({
    Action.CREATE, Action.CONFIGURE, Action.PURGE, Action.DELETE, Action.MANAGE_AFFILIATIONS,
    Action.MANAGE_SUBSCRIPTIONS, Action.GET_PENDING, Action.RETRACT_ANY, Action.UNSUBSCRIBE_OTHER,
})

_RANK = {
    Affiliation.OUTCAST: -1, Affiliation.NONE: 0, Affiliation.MEMBER: 1,
    Affiliation.PUBLISHER: 2, Affiliation.OWNER: 3,
}


@dataclass(frozen=True, slots=True)
class Viewer:
    """What the policy needs to know about the requester, for one node.

    `has_presence`: the owner approved this contact's presence subscription to the
    blog JID (a roster request alone grants nothing: it waits for the owner).
    """

    affiliation: Affiliation = Affiliation.NONE
    subscription: SubState = SubState.NONE
    has_presence: bool = False
    system: bool = False


#: somebody with no standing at all (an anonymous HTTP reader, a stranger)
NOBODY = Viewer()


def _may_read(access: AccessModel, v: Viewer) -> None:
    if v.affiliation is Affiliation.OUTCAST:
        raise Forbidden("you are banned from this node")
    if _RANK[v.affiliation] >= _RANK[Affiliation.MEMBER] or access is AccessModel.OPEN:
        return
    if access is AccessModel.PRESENCE:
        if not v.has_presence:
            raise PresenceSubscriptionRequired("add this blog to your roster first")
        return
    if access is AccessModel.WHITELIST:
        raise ClosedNode("this blog is only visible to people the owner listed")
    # AccessModel.AUTHORIZE
    if v.subscription is SubState.SUBSCRIBED:
        return
    if v.subscription is SubState.PENDING:
        raise PendingSubscription("your subscription awaits the owner's approval")
    raise NotSubscribedAccess("this blog is protected: subscribe and wait for approval")


def check(action: Action, access: AccessModel, viewer: Viewer) -> None:
    """Allow `action` or raise the refusal.

    Args:
        action: what is asked.
        access: the access model of the node whose rules apply (for a
            comments node, its post's microblog node).
        viewer: the requester's standing on that node.

    Raises:
        Forbidden, ClosedNode, PresenceSubscriptionRequired,
        NotSubscribedAccess, PendingSubscription.
    """
    if viewer.system:
        return
    aff = viewer.affiliation
    if action in OWNER_ONLY:
        if aff is not Affiliation.OWNER:
            raise Forbidden("only the owner may do that")
        return
    if action is Action.PUBLISH:
        if _RANK[aff] < _RANK[Affiliation.PUBLISHER]:
            raise Forbidden("only the owner and publishers may publish here")
        return
    if action is Action.SUBSCRIBE:
        # Pending is decided by subscribe_state(); here only outright refusals.
        if access is AccessModel.AUTHORIZE and aff is not Affiliation.OUTCAST:
            return
        _may_read(access, Viewer(aff, SubState.NONE, viewer.has_presence))
        return
    # RETRIEVE_ITEMS, BE_SUBSCRIBED, PUBLISH_COMMENT: whoever may read
    _may_read(access, viewer)


def subscribe_state(access: AccessModel, viewer: Viewer) -> SubState:
    """The state a new subscription starts in, after `check(SUBSCRIBE)` passed."""
    if (access is AccessModel.AUTHORIZE and not viewer.system
            and _RANK[viewer.affiliation] < _RANK[Affiliation.MEMBER]):
        return SubState.PENDING
    return SubState.SUBSCRIBED


def roster_request_state(access: AccessModel, viewer: Viewer) -> SubState:
    """The state a follow by roster (an RFC 6121 presence subscription request) starts in.

    A `presence` blog is read by contacts the owner approved, so there the request
    waits for the owner like on an `authorize` blog; a `whitelist` blog admits only
    its members. Raises the refusals of `check(SUBSCRIBE)` otherwise.
    """
    if access is AccessModel.PRESENCE and not viewer.has_presence and not viewer.system:
        if viewer.affiliation is Affiliation.OUTCAST:
            raise Forbidden("you are banned from this node")
        return SubState.SUBSCRIBED if _RANK[viewer.affiliation] >= _RANK[Affiliation.MEMBER] else SubState.PENDING
    check(Action.SUBSCRIBE, access, viewer)
    return subscribe_state(access, viewer)


def may(action: Action, access: AccessModel, viewer: Viewer) -> bool:
    """`check` as a boolean, for filtering (fan-out, disco items)."""
    try:
        check(action, access, viewer)
    except BlogError:
        return False
    return True

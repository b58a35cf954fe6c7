# SPDX-License-Identifier: AGPL-3.0-or-later
"""The one table from domain error to XMPP stanza error (adapter layer).

As Prosody's `pubsub_errors` and libervia's `_errorMap`: class -> (type,
condition, pubsub#errors child). `error_for` builds the <error/>.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

from ..core import errors as E
from ..xmpp.component import error_element
from ..protocol import NS_PUBSUB_ERRORS

log = logging.getLogger(__name__)

#: domain error -> (error type, defined condition, pubsub#errors child or None)
ERRORS: dict[type[E.BlogError], tuple[str, str, str | None]] = {
    E.NodeNotFound: ("cancel", "item-not-found", None),
    E.ItemNotFound: ("cancel", "item-not-found", None),
    E.Forbidden: ("auth", "forbidden", None),
    E.ClosedNode: ("cancel", "not-allowed", "closed-node"),
    E.PresenceSubscriptionRequired: ("auth", "not-authorized", "presence-subscription-required"),
    E.NotSubscribedAccess: ("auth", "not-authorized", "not-subscribed"),
    E.PendingSubscription: ("auth", "not-authorized", "pending-subscription"),
    E.NotSubscribed: ("cancel", "unexpected-request", "not-subscribed"),
    E.InvalidJid: ("modify", "bad-request", "invalid-jid"),
    E.InvalidPayload: ("modify", "bad-request", "invalid-payload"),
    E.PayloadTooBig: ("modify", "not-acceptable", "payload-too-big"),
    E.BadRequest: ("modify", "bad-request", None),
    E.ItemRequired: ("modify", "bad-request", "item-required"),
    E.NodeIdRequired: ("modify", "bad-request", "nodeid-required"),
    # XEP-0060 §8.1.3: a create without a node, where instant nodes are not supported
    E.InstantNodesUnsupported: ("modify", "not-acceptable", "nodeid-required"),
    E.InvalidOptions: ("modify", "not-acceptable", "invalid-options"),
    E.Conflict: ("cancel", "conflict", None),
    E.PreconditionNotMet: ("cancel", "conflict", "precondition-not-met"),
    E.Unsupported: ("cancel", "feature-not-implemented", "unsupported"),
    E.StorageUnavailable: ("wait", "internal-server-error", None),
    E.RemoteUnavailable: ("wait", "remote-server-timeout", None),
    E.NoMicroblog: ("cancel", "item-not-found", None),
    # XEP-0060 §8.8.2.4: subscription changes the service refuses
    E.SubscriptionsRefused: ("modify", "not-acceptable", None),
    E.ResourceConstraint: ("wait", "resource-constraint", None),
    E.DroppedEntry: ("modify", "not-acceptable", None),
}


def condition_of(exc: E.BlogError) -> tuple[str, str, str | None]:
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]  # type: ignore[index]
    return ("cancel", "internal-server-error", None)


def error_for(exc: E.BlogError) -> ET.Element:
    """The <error/> for a domain error, with its XEP-0060 application condition."""
    etype, cond, app = condition_of(exc)
    err = error_element(etype, cond, exc.text)
    if app:
        attrs = {"feature": exc.feature} if isinstance(exc, E.Unsupported) else {}
        ET.SubElement(err, f"{{{NS_PUBSUB_ERRORS}}}{app}", attrs)
    return err

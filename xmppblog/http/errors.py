# SPDX-License-Identifier: AGPL-3.0-or-later
"""The one HTTP mapping of domain errors (twin of pubsub/errors.py).

Anything the anonymous reader may not see is a 404 exactly like something
absent (T6: absent and forbidden look alike).
"""

from __future__ import annotations

from ..core import errors as E

STATUS: dict[type[E.BlogError], int] = {
    E.NodeNotFound: 404, E.ItemNotFound: 404, E.Forbidden: 404, E.ClosedNode: 404,
    E.PresenceSubscriptionRequired: 404, E.NotSubscribedAccess: 404, E.PendingSubscription: 404,
    E.NoMicroblog: 404,
    E.BadRequest: 400, E.InvalidJid: 400, E.InvalidOptions: 400, E.InvalidPayload: 400,
    E.ItemRequired: 400, E.NodeIdRequired: 400, E.PayloadTooBig: 413, E.Conflict: 409,
    E.Unsupported: 501, E.StorageUnavailable: 503, E.RemoteUnavailable: 503, E.ResourceConstraint: 503,
}


def status_of(exc: E.BlogError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def public_text(exc: E.BlogError) -> str:
    return "not found" if status_of(exc) == 404 else exc.text

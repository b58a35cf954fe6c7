# SPDX-License-Identifier: AGPL-3.0-or-later
"""The one consent rule: nobody receives anything from us unless they asked (core layer).

A subscription exists because its subscriber asked for it (XEP-0060 subscribe,
a chat `follow`, a roster request) and, on protected blogs, the owner agreed.
An owner may end any subscription and may approve one that was asked for, but
cannot create one for a JID that never asked: that would make the server a
relay for unsolicited messages (T17). Presence grants follow the same rule
(core/roster.py): a contact sees a blog's presence once the owner approved it.
The traffic limits that go with consent (per JID and per registrable domain,
for subscribes, roster requests, comments, reports and events) are spamguard's.
"""

from __future__ import annotations

from .model import SubState

#: owner changes (subscriptions, affiliations) one request may carry: larger lists are
#: refused before any of them is applied (one bounded transaction per request)
MAX_CHANGES_PER_REQUEST = 100
#: follow requests that may wait for one owner's answer; more are refused until they answer
MAX_PENDING_PER_NODE = 1000


def owner_may_set(current: SubState, wanted: SubState) -> bool:
    """May the owner put a subscription that is `current` into state `wanted`?

    Removing is always allowed; approving (or keeping) needs a request from the
    subscriber: a pending or existing subscription.
    """
    if wanted is SubState.NONE:
        return True
    if wanted is SubState.SUBSCRIBED:
        return current in (SubState.PENDING, SubState.SUBSCRIBED)
    return current is SubState.PENDING

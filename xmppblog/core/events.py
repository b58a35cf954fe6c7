# SPDX-License-Identifier: AGPL-3.0-or-later
"""Domain events: what changed, as the pubsub core says it (core layer, stdlib only).

The pubsub service (core/pubsub.py) and the remote feeds (core/remote_feeds.py)
change nodes, items and subscriptions, and emit one of these per change into
the open transaction. Projections registered by the composition root react in
the same transaction, before the commit: notifications (core/fanout.py), the
public timeline (core/timeline.py), the search index (core/search.py) and
presence grants (core/roster.py). A change and all its consequences are
committed together, or not at all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .model import AccessModel, Affiliation, Item, Node, SubState


class Cause(enum.StrEnum):
    """Who changed a subscription: notifications and roster answers depend on it."""

    SUBSCRIBER = "subscriber"   # the subscriber asked (XEP-0060 subscribe, chat follow, roster)
    OWNER = "owner"             # the owner decided (approval, XEP-0060 §8.8 owner changes)
    SYSTEM = "system"           # a rule did (an access change or a ban pruned it, bounces ended it)


@dataclass(frozen=True, slots=True)
class ItemPublished:
    """An item was stored (new or edited) on `node`; `access` is the node whose rules apply."""

    node: Node
    access: Node
    item: Item                        # `publisher`: whom the item is attributed to
    text: str                         # its plain text (tracked words, mentions, search)
    new: bool                         # False: an edit of an item the node held
    parent_owner: str | None = None   # a comment: who wrote the post it answers
    notify: bool = True               # False: stored quietly (catch-up, restoring a re-opened blog)
    discoverable: bool = False        # it carries its author's consent to network-wide indexes


@dataclass(frozen=True, slots=True)
class ItemRetracted:
    """An item left `node` (retracted, or trimmed when `notify` is False)."""

    node: Node
    access: Node
    item_id: str
    notify: bool


@dataclass(frozen=True, slots=True)
class NodePurged:
    node: Node
    access: Node


@dataclass(frozen=True, slots=True)
class NodeDeleted:
    """Emitted while the node and its subscriptions still exist, right before they go."""

    node: Node
    access: Node


@dataclass(frozen=True, slots=True)
class AccessChanged:
    node: Node            # with its new configuration
    before: AccessModel


@dataclass(frozen=True, slots=True)
class ConsentChanged:
    """The owner of `node` changed their choice for network-wide indexes (core/discovery.py)."""

    node: Node            # with its new configuration
    before: bool | None


@dataclass(frozen=True, slots=True)
class SubscriptionChanged:
    node: Node
    access: Node
    jid: str
    before: SubState
    after: SubState
    cause: Cause


@dataclass(frozen=True, slots=True)
class AffiliationChanged:
    node: Node
    jid: str
    before: Affiliation
    after: Affiliation


Event = (ItemPublished | ItemRetracted | NodePurged | NodeDeleted | AccessChanged | ConsentChanged
         | SubscriptionChanged | AffiliationChanged)

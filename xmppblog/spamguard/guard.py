# SPDX-License-Identifier: AGPL-3.0-or-later
"""Spamguard: consent and origin checks for inbound pubsub pushes (policy layer).

A push is accepted only if this server holds an active subscription, made with
a local user's consent, to exactly that (sender JID, node): the sender being
the node's own service as stamped by the host server (THREATS.md facts 1-2,
T1, T2). Every drop is logged and counted per reason and origin domain; drops
are silent (no reply, no bounce loops, no confirmation to spammers).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..core.jid import parse
from .verdict import ACCEPT, Verdict, drop

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RemotePush:
    origin: str        # the sender's JID as stamped by the host server
    node: str
    items: int         # number of items/retractions carried
    kind: str          # items | purge | delete | subscription


class Guard:
    def __init__(self, consented: Callable[[str, str], Awaitable[bool]], max_items_per_event: int = 50) -> None:
        self._consented = consented
        self.max_items_per_event = max_items_per_event
        self.drops: Counter[tuple[str, str]] = Counter()

    async def check(self, push: RemotePush) -> Verdict:
        if self.max_items_per_event and push.items > self.max_items_per_event:
            return self._drop(push, "too-many-items")
        if parse(push.origin).resource:
            # Pubsub services and PEP send from bare JIDs; a full JID is a client forging events.
            return self._drop(push, "from-full-jid")
        if not await self._consented(push.origin, push.node):
            return self._drop(push, "no-subscription")
        return ACCEPT

    def _drop(self, push: RemotePush, reason: str) -> Verdict:
        domain = parse(push.origin).domain
        self.drops[(reason, domain)] += 1
        log.info("push dropped: origin=%s node=%s kind=%s reason=%s", push.origin, push.node, push.kind, reason)
        return drop(reason)

    def drop_item(self, origin: str, node: str, item_id: str, reason: str) -> None:
        """Count one item of an accepted push that was refused on its own (e.g. a forged author)."""
        self.drops[(reason, parse(origin).domain)] += 1
        log.info("item dropped: origin=%s node=%s item=%s reason=%s", origin, node, item_id[:64], reason)

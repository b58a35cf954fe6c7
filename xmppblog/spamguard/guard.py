# SPDX-License-Identifier: AGPL-3.0-or-later
"""Spamguard: what other servers and users may send, checked before anything is stored (policy layer).

Two entry points:
* `gate(kind, sender, action)` for every inbound stanza, before its adapter:
  domain block/allow lists and token-bucket rate limits (per remote JID and
  domain for events, per JID for subscribes and chat commands, per local user
  for publishing);
* `check(push)` for pubsub events: accepted only if this server holds an
  active, consented subscription to exactly that (sender JID, node), the sender
  being the node's own service as stamped by the host server (THREATS.md
  facts 1-2, T1, T2, T7).
Every refusal is logged and counted per reason and origin domain; the counts
are flushed to the database (`xmppblog stats`). Drops are silent.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..core.jid import parse
from .buckets import TokenBuckets
from .verdict import ACCEPT, Verdict, drop, reject

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RemotePush:
    origin: str        # the sender's JID as stamped by the host server
    node: str
    items: int         # number of items/retractions carried
    kind: str          # items | purge | delete | subscription


@dataclass(frozen=True, slots=True)
class Limits:
    local_publishes_per_minute: int = 30
    remote_events_per_minute: int = 120
    remote_domain_events_per_minute: int = 600
    subscribes_per_minute: int = 20
    im_commands_per_minute: int = 30
    max_items_per_event: int = 50
    blocked_domains: frozenset[str] = frozenset()
    allowed_domains: frozenset[str] = frozenset()
    over_limit: str = "policy-violation"  # or "drop"


class Guard:
    def __init__(self, consented: Callable[[str, str], Awaitable[bool]], local_domains: set[str],
                 limits: Limits = Limits(), now: Callable[[], float] = time.monotonic) -> None:
        self._consented = consented
        self.local_domains = local_domains
        self.limits = limits
        self.blocked = set(limits.blocked_domains)
        self.allowed = set(limits.allowed_domains)
        self._events_jid = TokenBuckets(limits.remote_events_per_minute, now)
        self._events_domain = TokenBuckets(limits.remote_domain_events_per_minute, now)
        self._subscribes = TokenBuckets(limits.subscribes_per_minute, now)
        # a whole remote domain may subscribe ten times as often as one of its JIDs
        self._subscribes_domain = TokenBuckets(limits.subscribes_per_minute * 10, now)
        self._commands = TokenBuckets(limits.im_commands_per_minute, now)
        self._publishes = TokenBuckets(limits.local_publishes_per_minute, now)
        self.drops: Counter[tuple[str, str]] = Counter()
        self._unflushed: Counter[tuple[str, str]] = Counter()
        #: real-time block list entries: sha256 hex of blocked bare JIDs and domains (RTBL items)
        self.rtbl: set[str] = set()
        #: (service, node) pairs whose items are block list entries
        self.rtbl_sources: set[tuple[str, str]] = set()
        #: the most recent refusals, for admins: (monotonic time, reason, origin)
        self.recent: deque[tuple[float, str, str]] = deque(maxlen=50)
        self._now = now

    def apply_domain_policies(self, policies: list[tuple[str, str]]) -> None:
        """Add run-time list entries (stored by admins) to the configured ones."""
        self.blocked = set(self.limits.blocked_domains) | {d for d, p in policies if p == "block"}
        self.allowed = set(self.limits.allowed_domains) | {d for d, p in policies if p == "allow"}

    # ------------------------------------------------------------ every stanza

    def domain_refused(self, domain: str) -> bool:
        if domain in self.local_domains:
            return False
        return domain in self.blocked or bool(self.allowed and domain not in self.allowed)

    def gate(self, kind: str, sender: str, action: str) -> Verdict:
        """Admit one inbound stanza before its adapter sees it.

        Args:
            kind: iq | message | presence.
            sender: the sender's JID as stamped by the host server.
            action: what it asks, e.g. 'pubsub:subscribe', 'pubsub:publish', 'chat', 'event'.
        """
        j = parse(sender)
        if self.domain_refused(j.domain):
            return self._refuse(kind, j.domain, sender, "blocked-domain", "forbidden")
        if self.rtbl and j.domain not in self.local_domains and (
                sha256_hex(j.domain) in self.rtbl or sha256_hex(j.bare) in self.rtbl):
            return self._refuse(kind, j.domain, sender, "rtbl", "forbidden")
        local_user = j.domain in self.local_domains
        if action == "event" and not local_user:
            # The JID's own bucket first: one flooding JID must not use up its domain's share.
            if not self._events_jid.take(j.bare):
                return self._refuse("message", j.domain, sender, "rate-jid-events", None)
            if not self._events_domain.take(j.domain):
                return self._refuse("message", j.domain, sender, "rate-domain-events", None)
        elif action == "pubsub:subscribe" and not self._subscribes.take(j.bare):
            return self._refuse(kind, j.domain, sender, "rate-subscribes", "policy-violation")
        elif action == "pubsub:subscribe" and not local_user and not self._subscribes_domain.take(j.domain):
            return self._refuse(kind, j.domain, sender, "rate-domain-subscribes", "policy-violation")
        elif action == "pubsub:publish" and not self._publishes.take(j.bare):
            return self._refuse(kind, j.domain, sender, "rate-publishes", "policy-violation")
        elif action == "chat" and local_user and not self._commands.take(j.bare):
            return self._refuse(kind, j.domain, sender, "rate-commands", "policy-violation")
        return ACCEPT

    def _refuse(self, kind: str, domain: str, sender: str, reason: str, condition: str | None) -> Verdict:
        self._count(reason, domain, sender)
        log.info("stanza refused: kind=%s from=%s reason=%s", kind, sender, reason)
        if condition is None or (self.limits.over_limit == "drop" and reason.startswith("rate-")):
            return drop(reason)
        return reject(condition, reason)

    # ------------------------------------------------------------ pubsub events

    async def check(self, push: RemotePush) -> Verdict:
        if self.limits.max_items_per_event and push.items > self.limits.max_items_per_event:
            return self._drop(push, "too-many-items")
        if parse(push.origin).resource:
            # Pubsub services and PEP send from bare JIDs; a full JID is a client forging events.
            return self._drop(push, "from-full-jid")
        if not await self._consented(push.origin, push.node):
            return self._drop(push, "no-subscription")
        return ACCEPT

    def _drop(self, push: RemotePush, reason: str) -> Verdict:
        self._count(reason, parse(push.origin).domain, push.origin)
        log.info("push dropped: origin=%s node=%s kind=%s reason=%s", push.origin, push.node, push.kind, reason)
        return drop(reason)

    def drop_item(self, origin: str, node: str, item_id: str, reason: str) -> None:
        """Count one item of an accepted push that was refused on its own (e.g. a forged author)."""
        self._count(reason.split(":")[0], parse(origin).domain, origin)
        log.info("item dropped: origin=%s node=%s item=%s reason=%s", origin, node, item_id[:64], reason)

    def _count(self, reason: str, domain: str, origin: str = "") -> None:
        self.drops[(reason, domain)] += 1
        self._unflushed[(reason, domain)] += 1
        self.recent.append((self._now(), reason, origin or domain))

    def take_unflushed(self) -> Counter[tuple[str, str]]:
        out, self._unflushed = self._unflushed, Counter()
        return out


def sha256_hex(text: str) -> str:
    """How RTBL items name what they block (as the XMPP community's block lists do)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def as_gate(guard: Guard) -> Callable[[str, str, str], str | None]:
    """The component's gate hook: None admits, "" drops silently, else the condition to refuse with."""
    def gate(kind: str, sender: str, action: str) -> str | None:
        verdict = guard.gate(kind, sender, action)
        if verdict.accepted:
            return None
        return verdict.condition or ""
    return gate

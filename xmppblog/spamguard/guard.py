# SPDX-License-Identifier: AGPL-3.0-or-later
"""Spamguard: what other servers and users may send, checked before anything is stored (policy layer).

Two entry points:
* `gate(kind, sender, action)` for every inbound stanza, before its adapter:
  domain block/allow lists and block lists (a domain's subdomains included),
  and token buckets per JID and per registrable domain for every kind of
  traffic that asks something of us: pubsub events, subscribe requests (by
  XEP-0060 and by roster), publishes and comments, owner changes, block and
  report requests, searches, chat;
* `check(push)` for pubsub events: accepted only if this server holds an
  active, consented subscription to exactly that (sender JID, node), the sender
  being the node's own service as stamped by the host server (THREATS.md
  facts 1-2, T1, T2, T7), with a bounded number of items.
Every refusal is logged and counted per reason and origin domain; the counts
are flushed to the database (`xmppblog stats`). Drops are silent.
In a cluster, the rates a sender can spread over workers are also shared
(spamguard/shared.py); with one process the buckets are this process's alone.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..core.jid import parse
from .buckets import TokenBuckets
from .domains import covered, registrable
from .rtbl import BlockLists
from .shared import SharedBuckets, SharedLimits
from .verdict import ACCEPT, Verdict, drop, reject

log = logging.getLogger(__name__)

#: a spammed-at service gets at most this many "unsubscribe us" requests a minute per domain
TELL_TO_STOP_PER_MINUTE = 10
#: (origin, node) pairs already told to stop, remembered this long
TOLD_FOR_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class RemotePush:
    origin: str        # the sender's JID as stamped by the host server
    node: str
    items: int         # items and retractions carried, across every child of the event
    kind: str          # items | purge | delete | subscription
    children: int = 1  # children of the <event/>: XEP-0060 events carry one


@dataclass(frozen=True, slots=True)
class Limits:
    local_publishes_per_minute: int = 30
    remote_publishes_per_minute: int = 10
    remote_domain_publishes_per_minute: int = 60
    remote_events_per_minute: int = 120
    remote_domain_events_per_minute: int = 600
    subscribes_per_minute: int = 20
    owner_changes_per_minute: int = 20
    reports_per_minute: int = 10
    searches_per_minute: int = 30
    im_commands_per_minute: int = 30
    max_items_per_event: int = 50
    blocked_domains: frozenset[str] = frozenset()
    allowed_domains: frozenset[str] = frozenset()
    over_limit: str = "policy-violation"  # or "drop"


class _Rate:
    """A per-JID and a per-registrable-domain bucket for one kind of traffic (in a cluster,
    drawing on the workers' shared levels as well when `shared` is given)."""

    def __init__(self, name: str, per_jid: int, per_domain: int, now: Callable[[], float],
                 shared: SharedLimits | None = None) -> None:
        self.name = name
        jid, domain = TokenBuckets(per_jid, now), TokenBuckets(per_domain, now)
        self.jid: TokenBuckets | SharedBuckets = jid if shared is None else shared.buckets(f"{name}:jid", jid)
        self.domain: TokenBuckets | SharedBuckets = (domain if shared is None else
                                                     shared.buckets(f"{name}:domain", domain))

    def take(self, bare: str, domain: str, local: bool) -> str | None:
        """None if admitted, else the refusal reason. Local users have no domain bucket."""
        # The JID's own bucket first: one flooding JID must not use up its domain's share.
        if not self.jid.take(bare):
            return f"rate-{self.name}" if local else f"rate-jid-{self.name}"
        if not local and not self.domain.take(registrable(domain)):
            return f"rate-domain-{self.name}"
        return None


class Guard:
    def __init__(self, consented: Callable[[str, str], Awaitable[bool]], local_domains: set[str],
                 limits: Limits = Limits(), now: Callable[[], float] = time.monotonic,
                 blocklists: BlockLists | None = None, shared: SharedLimits | None = None) -> None:
        """Args:
            shared: in a cluster, the workers' shared levels: the rates a sender can spread over
                workers (all but pubsub events, which only the service JID's worker receives)
                draw on them as well. None (one process): local buckets only, as cheap as ever.
        """
        self._consented = consented
        self.local_domains = local_domains
        self.limits = limits
        self.blocked = set(limits.blocked_domains)
        self.allowed = set(limits.allowed_domains)
        self.blocklists = blocklists if blocklists is not None else BlockLists()
        lim, sh = limits, shared
        # remote traffic: a whole domain may send ten times what one of its JIDs may. In a cluster,
        # remote pubsub events are not shared: they only ever come to the service JID, so to one
        # worker, and sharing them would only cost writes. A subscriber, a searcher or a chatter
        # reaches many blogs, so many workers.
        self._rates = {
            "event": _Rate("events", lim.remote_events_per_minute, lim.remote_domain_events_per_minute, now),
            "subscribe": _Rate("subscribes", lim.subscribes_per_minute, lim.subscribes_per_minute * 10, now, sh),
            "publish": _Rate("publishes", lim.remote_publishes_per_minute, lim.remote_domain_publishes_per_minute,
                             now, sh),
            "owner": _Rate("owner-changes", lim.owner_changes_per_minute, lim.owner_changes_per_minute * 10, now,
                           sh),
            "report": _Rate("reports", lim.reports_per_minute, lim.reports_per_minute * 10, now, sh),
            "search": _Rate("searches", lim.searches_per_minute, lim.searches_per_minute * 10, now, sh),
            "chat": _Rate("commands", lim.im_commands_per_minute, lim.im_commands_per_minute * 10, now, sh),
        }
        # a user publishes to their blog JID and through the service JID: two workers
        local_publishes = TokenBuckets(lim.local_publishes_per_minute, now)
        self._local_publishes: TokenBuckets | SharedBuckets = (
            local_publishes if sh is None else sh.buckets("publishes:local", local_publishes))
        #: the cluster's shared levels, flushed by the composition root (None: one process)
        self.shared = shared
        self._tell_to_stop = TokenBuckets(TELL_TO_STOP_PER_MINUTE, now)
        self._told: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.drops: Counter[tuple[str, str]] = Counter()
        self._unflushed: Counter[tuple[str, str]] = Counter()
        #: the most recent refusals, for admins: (monotonic time, reason, origin)
        self.recent: deque[tuple[float, str, str]] = deque(maxlen=50)
        self._now = now

    def apply_domain_policies(self, policies: list[tuple[str, str]]) -> None:
        """Add run-time list entries (stored by admins) to the configured ones."""
        self.blocked = set(self.limits.blocked_domains) | {d for d, p in policies if p == "block"}
        self.allowed = set(self.limits.allowed_domains) | {d for d, p in policies if p == "allow"}

    # ------------------------------------------------------------ every stanza

    def domain_refused(self, domain: str) -> bool:
        """Is `domain` (or a parent of it) blocked, or outside a non-empty allow list?"""
        if domain in self.local_domains:
            return False
        return covered(domain, self.blocked) or bool(self.allowed and not covered(domain, self.allowed))

    def gate(self, kind: str, sender: str, action: str) -> Verdict:
        """Admit one inbound stanza before its adapter sees it.

        Args:
            kind: iq | message | presence.
            sender: the sender's JID as stamped by the host server.
            action: what it asks (xmpp/component.py classifies): event, subscribe, publish,
                owner, report, search, chat, bounce, presence, iq…
        """
        j = parse(sender)
        local = j.domain in self.local_domains
        if self.domain_refused(j.domain):
            return self._refuse(kind, j.domain, sender, "blocked-domain", "forbidden")
        if not local and self.blocklists.blocks(j.bare, j.domain):
            return self._refuse(kind, j.domain, sender, "rtbl", "forbidden")
        if action == "publish" and local:
            if not self._local_publishes.take(j.bare):
                return self._refuse(kind, j.domain, sender, "rate-publishes", "policy-violation")
            return ACCEPT
        rate = self._rates.get(action)
        if rate is None or (action == "event" and local):
            return ACCEPT
        reason = rate.take(j.bare, j.domain, local)
        if reason is None:
            return ACCEPT
        # events are never answered (spam gets no echo); requests hear that they went over a limit
        return self._refuse(kind, j.domain, sender, reason, None if action == "event" else "policy-violation")

    def _refuse(self, kind: str, domain: str, sender: str, reason: str, condition: str | None) -> Verdict:
        self._count(reason, domain, sender)
        log.info("stanza refused: kind=%s from=%s reason=%s", kind, sender, reason)
        if condition is None or (self.limits.over_limit == "drop" and reason.startswith("rate-")):
            return drop(reason)
        return reject(condition, reason)

    # ------------------------------------------------------------ pubsub events

    async def check(self, push: RemotePush) -> Verdict:
        if push.children > 1:
            return self._drop(push, "many-children")  # XEP-0060 events carry one
        if self.limits.max_items_per_event and push.items > self.limits.max_items_per_event:
            return self._drop(push, "too-many-items")
        if parse(push.origin).resource:
            # Pubsub services and PEP send from bare JIDs; a full JID is a client forging events.
            return self._drop(push, "from-full-jid")
        if not await self._consented(push.origin, push.node):
            return self._drop(push, "no-subscription")
        return ACCEPT

    def may_tell_to_stop(self, origin: str, node: str) -> bool:
        """A service that keeps pushing a node we do not follow gets one unsubscribe, in case it
        holds a stale subscription of ours: once per (origin, node) an hour, and a few a minute
        per domain, so spam gets no echo."""
        now = self._now()
        while self._told and next(iter(self._told.values())) < now - TOLD_FOR_SECONDS:
            self._told.popitem(last=False)
        key = (origin, node)
        if key in self._told or not self._tell_to_stop.take(registrable(parse(origin).domain)):
            return False
        self._told[key] = now
        if len(self._told) > 10_000:
            self._told.popitem(last=False)
        return True

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

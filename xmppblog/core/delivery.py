# SPDX-License-Identifier: AGPL-3.0-or-later
"""What to do when a notification to another server bounces (core layer).

XMPP acknowledges nothing a component sends (THREATS.md fact 7), so an outbox
row addressed to a remote server is kept for a while after sending. A bounce
that names it is either temporary (the s2s link or the remote server is down:
retry with backoff until `retry_for` has passed) or permanent (the subscriber
is gone or refuses us). Only repeated permanent errors end a subscription:
treating one 'recipient-unavailable' as an unsubscribe would drop real
followers after a network blip (fact 8). What became of each notification
(delivered, or failed for good) is counted as the outbox forgets it, and those
counts are kept `keep_counts_for` (core/status.py reads them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from .events import Cause, SubscriptionChanged
from .jid import bare
from .model import NodeRef, SubState
from .ports import Clock
from .shards import job_shard
from .transactions import Transactions

log = logging.getLogger(__name__)

TEMPORARY = frozenset({"remote-server-timeout", "recipient-unavailable", "resource-constraint",
                       "internal-server-error", "service-unavailable", "undefined-condition",
                       "policy-violation"})
PERMANENT = frozenset({"item-not-found", "forbidden", "remote-server-not-found", "not-allowed",
                       "gone", "not-authorized", "registration-required", "bad-request",
                       "subscription-required", "jid-malformed", "feature-not-implemented"})


def is_temporary(condition: str) -> bool:
    return condition not in PERMANENT


def backoff(attempts: int, first: float = 30.0) -> timedelta:
    """`first` seconds, then doubling (30 s, 1 min, 2 min …), capped at 1 h."""
    return timedelta(seconds=min(3600.0, first * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    retry_for: timedelta = timedelta(hours=24)
    keep_sent_for: timedelta = timedelta(minutes=10)
    max_failures: int = 3
    first_retry: float = 30.0
    #: how long `status ID` and `xmppblog stats` can tell what became of a notification
    keep_counts_for: timedelta = timedelta(days=7)


class Deliveries:
    """Bounce handling and the expiry of sent rows."""

    def __init__(self, uow: Transactions, clock: Clock, policy: DeliveryPolicy = DeliveryPolicy()) -> None:
        self._uow = uow
        self._clock = clock
        self.policy = policy

    async def bounced(self, row_id: int, sender: str, condition: str) -> str:
        """A notification with outbox id `row_id` bounced from `sender`. Returns what was done."""
        now = self._clock.now()
        async with self._uow() as uow:
            row = await uow.outbox.get(row_id)
            if row is None or bare(row.recipient) != bare(sender):
                return "unknown"  # not ours, or already expired: nothing to retry
            ev = row.event
            if is_temporary(condition):
                if row.created_at is not None and now - row.created_at > self.policy.retry_for:
                    await uow.outbox.done([row_id], failed=True)
                    await uow.commit()
                    log.warning("delivery given up: to=%s node=%s item=%s after %s (%s)",
                                row.recipient, ev.node, ev.item_id, now - row.created_at, condition)
                    return "gave-up"
                attempts = row.attempts + 1
                wait = backoff(attempts, self.policy.first_retry)
                await uow.outbox.retry(row_id, attempts, now + wait)
                await uow.commit()
                log.info("delivery retry: to=%s node=%s item=%s attempt=%d in %s (%s)",
                         row.recipient, ev.node, ev.item_id, attempts, wait, condition)
                return "retry"
            await uow.outbox.done([row_id], failed=True)
            failures = 0
            node = await uow.nodes.get(NodeRef(ev.sender, ev.node))
            if node is not None:
                failures = await uow.subs.add_failure(node, row.recipient)
                if failures >= self.policy.max_failures and await uow.subs.delete(node, row.recipient):
                    access = await uow.nodes.get(node.ref.parent()) if node.ref.of_post else node
                    await uow.emit(SubscriptionChanged(node, access or node, row.recipient, SubState.SUBSCRIBED,
                                                       SubState.NONE, Cause.SYSTEM))
                    log.warning("subscription ended after %d permanent errors: node=%s jid=%s (%s)",
                                failures, ev.node, row.recipient, condition)
            await uow.commit()
            log.info("delivery failed permanently: to=%s node=%s item=%s failures=%d (%s)",
                     row.recipient, ev.node, ev.item_id, failures, condition)
            return "ended" if failures >= self.policy.max_failures else "failed"

    async def retrying_servers(self, limit: int = 50) -> list[str]:
        """Servers some of whose notifications bounced and wait for a retry (at most `limit`)."""
        async with self._uow() as uow:
            return list(await uow.outbox.retrying_servers(limit * 20))[:limit]

    async def server_back(self, server: str) -> int:
        """`server` answers again: what waits for a retry to it is due now, instead of after a
        backoff that grew while it was away (an outage's backlog drains at full speed)."""
        async with self._uow() as uow:
            n = await uow.outbox.retry_now(server, self._clock.now())
            await uow.commit()
        if n:
            log.info("delivery: %s answers again; its %d waiting notification(s) are sent now", server, n)
        return n

    async def requeue_after_restart(self) -> int:
        """Notifications handed to other servers may have bounced while this process was
        stopped: send them all again (a duplicate at worst, never a loss). A cluster does the
        same for a dead worker's last moments when it forgets it (storage/cluster)."""
        async with self._uow() as uow:
            n = await uow.outbox.requeue_sent()
            await uow.commit()
        if n:
            log.info("outbox: %d notification(s) to other servers sent again after restart", n)
        return n

    async def expire_sent(self, shards: frozenset[int] | None = None) -> int:
        """Forget remote deliveries that did not bounce within `keep_sent_for` (they count as
        delivered), of every shard or of `shards` (a worker of a cluster, its own), and, once
        in a cluster, delivery counts older than `keep_counts_for`."""
        now = self._clock.now()
        async with self._uow() as uow:
            n = await uow.outbox.expire_sent(now - self.policy.keep_sent_for, shards)
            if shards is None or job_shard("forget-counts") in shards:
                await uow.outbox.forget_tallies(before=now - self.policy.keep_counts_for)
            await uow.commit()
        return n

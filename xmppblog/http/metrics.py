# SPDX-License-Identifier: AGPL-3.0-or-later
"""What a monitoring system reads: the Prometheus metrics of one xmppblog process.

Counters and histograms move as things happen (a post committed, a batch of
notifications confirmed by the host); gauges that describe stored state (the
outbox backlog, subscriptions held at other servers) are read from the
database when scraped, so they are right whichever process or command changed
it. Each App has its own registry: several can live in one test process.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ..core.addressing import Addressing
from ..core.events import ItemPublished
from ..core.model import EventKind, SubState
from ..core.ports import UnitOfWorkFactory
from ..core.status import other_servers
from ..core.transactions import Projections, Tx

#: publishing is a database transaction: milliseconds, up to seconds under load
PUBLISH_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
#: the busiest servers get a series each: a scrape stays small whatever the network's size
MAX_SERVERS = 200
#: from planned to confirmed by the host: sub-second normally, minutes when a server is down
DELIVERY_BUCKETS = (.01, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0)


class _SpamguardRefusals(Collector):
    """xmppblog_spamguard_refused_total{reason}, from spamguard's own tally since start."""

    def __init__(self, drops: Callable[[], Tally[tuple[str, str]]]) -> None:
        self._drops = drops

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("xmppblog_spamguard_refused", "Stanzas spamguard refused or dropped, "
                                     "by reason, since the process started", labels=["reason"])
        per_reason: Tally[str] = Tally()
        for (reason, _domain), n in self._drops().items():
            per_reason[reason] += n
        for reason, n in sorted(per_reason.items()):
            family.add_metric([reason], n)
        yield family


class Metrics:
    """The process's metrics and the hooks that move them."""

    def __init__(self, addr: Addressing, spamguard_drops: Callable[[], Tally[tuple[str, str]]],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.addr = addr
        self._monotonic = monotonic
        self.registry = r = CollectorRegistry()
        self.posts_published = Counter(
            "xmppblog_posts_published", "Posts and comments local users published (new items, not edits)",
            registry=r)
        self.notifications_sent = Counter(
            "xmppblog_notifications_sent", "Notifications the host server confirmed it received, by kind",
            ["kind"], registry=r)
        for kind in EventKind:
            self.notifications_sent.labels(kind.value)
        self.publish_seconds = Histogram(
            "xmppblog_publish_seconds", "Time a local publish took, from its transaction's start to its commit",
            buckets=PUBLISH_BUCKETS, registry=r)
        self.delivery_seconds = Histogram(
            "xmppblog_delivery_seconds", "Time from a notification being planned to the host confirming it "
            "(one observation per stanza batch: a post's local recipients handed together count once)",
            buckets=DELIVERY_BUCKETS, registry=r)
        self.outbox_depth = Gauge("xmppblog_outbox_depth", "Notifications waiting to be handed to the host",
                                  registry=r)
        self.outbox_oldest_seconds = Gauge(
            "xmppblog_outbox_oldest_seconds", "Age of the oldest notification still waiting (0 when none)",
            registry=r)
        self.remote_subscriptions = Gauge(
            "xmppblog_remote_subscriptions", "Subscriptions this server holds at other servers, by state",
            ["state"], registry=r)
        self.server_notifications = Gauge(
            "xmppblog_server_notifications", "Notifications to each other server still counted, by what became "
            "of them (delivered, pending, retrying, failed; as `xmppblog stats` shows them)",
            ["server", "state"], registry=r)
        r.register(_SpamguardRefusals(spamguard_drops))

    def register(self, projections: Projections) -> None:
        """Count local publishes as they commit."""
        projections.on(ItemPublished, self._published)

    async def _published(self, tx: Tx, event: ItemPublished) -> None:
        if (not event.new or not event.notify or event.node.ref.is_attachments
                or self.addr.owner_of(event.node.ref.service) is None):
            return
        opened_at = tx.opened_at

        def count() -> None:  # runs once committed: the commit is part of publishing
            self.posts_published.inc()
            self.publish_seconds.observe(max(0.0, self._monotonic() - opened_at))
        tx.call_after(count)

    def delivered(self, kind: str, count: int, planned_at: datetime | None, now: datetime) -> None:
        """`count` notifications of `kind`, planned at `planned_at`, were confirmed by the host."""
        if count <= 0:
            return
        self.notifications_sent.labels(kind).inc(count)
        if planned_at is not None:
            self.delivery_seconds.observe(max(0.0, (now - planned_at).total_seconds()))

    async def refresh(self, uow: UnitOfWorkFactory, now: datetime) -> None:
        """Read the stored state the gauges describe."""
        async with uow() as u:
            depth, oldest = await u.outbox.backlog()
            remote = await u.remote.all()
            tallies = await u.outbox.tallies_by_server()
        self.outbox_depth.set(depth)
        self.outbox_oldest_seconds.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        states = Tally(sub.state.value for sub in remote)
        for state in SubState:
            self.remote_subscriptions.labels(state.value).set(states.get(state.value, 0))
        servers = sorted(other_servers(tallies, self.addr),
                         key=lambda t: -(t.delivered + t.pending + t.retrying + t.failed))[:MAX_SERVERS]
        self.server_notifications.clear()  # servers whose counts were forgotten leave the scrape
        for t in servers:
            for state, n in (("delivered", t.delivered), ("pending", t.pending), ("retrying", t.retrying),
                             ("failed", t.failed)):
                self.server_notifications.labels(t.server, state).set(n)

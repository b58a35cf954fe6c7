# SPDX-License-Identifier: AGPL-3.0-or-later
"""Composition root: the only module that imports every layer.

`build_core` assembles the core services over a unit-of-work factory and
registers the projections on their domain events; `App` adds storage, the
component, spamguard, the federation and the adapters from a `Config`, runs
them until asked to stop, and shuts down in order: stop taking requests,
finish in-flight ones, flush the outbox, close the stream, close the
database. Tests build the same graph with their own parts (tests/support).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .cluster.membership import Membership
from .cluster.presence import SharedOnline
from .config import Config, FirehoseConfig, safe_url
from .core.accounts import Accounts
from .core.addressing import Addressing
from .core.archive import Archive
from .core.delivery import Deliveries, DeliveryPolicy
from .core.discovery import Discovery
from .core.fanout import Notifications
from .core.firehose import Firehose
from .core.following import FollowService
from .core.model import NodeRef
from .core.moderation import Moderation
from .core.ports import Clock, EntryCodec, OnlineView, RemoteDirectory, SearchIndex
from .core.posting import PostingService
from .core.pubsub import Limits, PubsubService
from .core.remote_feeds import RemoteFeeds
from .core.roster import PresenceGrants, RosterService
from .core.network import NetworkView
from .core.stream import PostStream
from .core.search import SearchIndexer, SearchService
from .core.social import SocialService
from .core.status import DeliveryStatus
from .core.timeline import PublicTimeline
from .core.transactions import Transactions, Tx
from .core.events import AccessChanged, ConsentChanged, ItemRetracted, NodeDeleted
from .core.visibility import NodeMap
from .federation.bounces import Bounces
from .federation.inbound import InboundEvents
from .federation.iq import Requests, condition
from .federation.receive import EntryPipeline
from .federation.recovery import ServerRecovery
from .federation.aggregator import Sources, firehose_of
from .federation.remote import RemoteBlogs
from .federation.verify import Verifier
from .http.health import Health, Probes
from .http.export import ExportRoute
from .http.server import HttpApi
from .http.server import start as start_http
from .http.snapshot import Snapshot
from .http.stream import StreamHub
from .im.commands import ChatBot
from .im.online import OnlineTracker
from .im.reports import BlockingAdapter
from .im.roster import RosterAdapter
from .im.text import im_body
from .im.vcard import VCardAdapter
from .http.metrics import Metrics
from .protocol import NS_DISCO_INFO
from .pubsub.errors import error_for
from .pubsub.notify import OutboxSender
from .pubsub.signing import Signer
from .pubsub.xep_0030 import DiscoAdapter, MiscAdapter
from .pubsub.xep_0050 import CommandsAdapter
from .pubsub.xep_0060 import PubsubAdapter
from .pubsub.xep_0277 import AtomCodec
from .pubsub.xep_0313 import ArchiveAdapter
from .spamguard.guard import Guard
from .spamguard.guard import Limits as GuardLimits
from .spamguard.rtbl import BlockLists
from .spamguard.shared import SharedLimits
from .storage import migrate, probe
from .storage.cluster import ClusterStore, SpamUsage, Versions, cluster_engine, live_workers
from .storage.engine import create_engine, sessionmaker
from .storage.repos import uow_factory
from .storage.search import SearchReader
from .xmpp.component import BlogComponent, Request
from .xmpp.multicast import discover
from .xmpp.pool import ComponentPool, connections

log = logging.getLogger(__name__)

#: how long the user directory and the statistics may be old (they count across every blog)
SNAPSHOT_SECONDS = 30.0
#: a cluster's worker looks at its outbox shards this often when idle (others plan for them)
CLUSTER_POLL_SECONDS = 0.25
#: after a worker died, contacts are asked for their presence again this much later
DEAD_WORKER_REPROBE_SECONDS = 15.0
#: one worker of a cluster deletes spamguard's drained shared levels this often
SPAM_USAGE_EXPIRY_SECONDS = 60.0
#: a cluster's worker reads the admins' run-time domain lists again this often (an admin
#: command changes them on the one worker that handles it)
DOMAIN_POLICY_SECONDS = 5.0
#: the version counter a cluster's workers bump when a push changed a real-time block list
BLOCKLISTS = "rtbl"
#: ... and when a worker left, taking its view of who is online with it
PRESENCE = "presence"
#: contacts are asked for their presence again at most this often (slots moving, workers leaving)
REPROBE_SECONDS = 10.0


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class Core:
    """The core services, wired, with their projections registered."""

    transactions: Transactions
    pubsub: PubsubService
    remote: RemoteFeeds
    follows: FollowService
    posting: PostingService
    social: SocialService
    roster: RosterService
    search: SearchService
    moderation: Moderation
    deliveries: Deliveries
    accounts: Accounts
    status: DeliveryStatus
    archive: Archive
    stream: PostStream
    network: NetworkView


def build_core(tx: Transactions, addr: Addressing, clock: Clock, codec: EntryCodec, online: OnlineView,
               search_index: SearchIndex, remote: RemoteFeeds, directory: RemoteDirectory,
               limits: Limits = Limits(), admins: tuple[str, ...] = (), delivery: DeliveryPolicy = DeliveryPolicy(),
               new_id: Callable[[], str] | None = None, discovery: Discovery = Discovery(),
               firehose_items: int = FirehoseConfig.max_items) -> Core:
    """The core services over `tx`, and the projections of their domain events.

    The projections run in registration order inside the transaction that emits: the
    search index, the public timeline and the firehose first, then the notifications
    (which also notify the copies), then presence grants.
    """
    nodes = NodeMap(addr)
    pubsub = (PubsubService(addr, tx, codec, clock, limits, new_id, discovery=discovery) if new_id is not None
              else PubsubService(addr, tx, codec, clock, limits, discovery=discovery))
    moderation = Moderation(addr, tx, clock, admins)
    follows = FollowService(addr, tx, pubsub, remote, directory)
    roster = RosterService(addr, tx, pubsub, codec)
    SearchIndexer(nodes, codec).register(tx.projections)
    PublicTimeline(nodes, limits.max_items_per_node).register(tx.projections)
    Firehose(nodes, firehose_items, discovery).register(tx.projections)
    Notifications(addr, online).register(tx.projections)
    PresenceGrants(roster).register(tx.projections)
    posting = PostingService(addr, tx, pubsub, codec, directory)
    stream = PostStream(tx, nodes, clock, discovery, codec)
    return Core(tx, pubsub, remote, follows, posting,
                SocialService(addr, tx, pubsub, follows, moderation, roster), roster, SearchService(tx, search_index),
                moderation, Deliveries(tx, clock, delivery),
                Accounts(addr, tx, pubsub, remote, directory, moderation, clock),
                DeliveryStatus(tx, posting, moderation), Archive(tx, pubsub, codec), stream,
                NetworkView(tx, stream, discovery, codec, clock))


def core_limits(cfg: Config) -> Limits:
    """The core's limits from `[limits]` (the command line builds the core with the same)."""
    lim = cfg.limits
    return Limits(lim.max_payload_bytes, lim.max_items_per_node, lim.max_page_items,
                  min(256 * 1024, lim.max_stanza_bytes // 2))


def discovery_of(cfg: Config) -> Discovery:
    """The consent rule for network-wide indexes, with `[firehose] default_discoverable`."""
    return Discovery(cfg.firehose.default_discoverable)


def delivery_policy(cfg: Config) -> DeliveryPolicy:
    """How bounces are retried and sent rows kept, from `[federation]`."""
    f = cfg.federation
    return DeliveryPolicy(timedelta(seconds=f.retry_for_seconds), timedelta(seconds=f.keep_sent_seconds),
                          f.max_permanent_failures, f.first_retry_seconds)


def rtbl_nodes(cfg: Config) -> list[tuple[str, str]]:
    """(service JID, node) of each `[spamguard] rtbl_services` entry ("service, node")."""
    return [(s.split(",", 1)[0].strip(), s.split(",", 1)[1].strip()) for s in cfg.spamguard.rtbl_services]


def freeze_startup_objects() -> None:
    """Keep what startup made (modules, the migrations, table metadata, compiled statements)
    out of every later full garbage collection: it lives as long as the process, and walking
    it held the event loop for ~70 ms per full collection (bench/search_stall.py)."""
    gc.collect()
    gc.freeze()


class App:
    def __init__(self, cfg: Config, component_factory: type[BlogComponent] = BlogComponent) -> None:
        self.cfg = cfg
        c, lim, sg = cfg.component, cfg.limits, cfg.spamguard
        self.engine = create_engine(cfg.database.url, cfg.database.sqlite_synchronous.upper())
        self._clock = SystemClock()
        self.addr = addr = Addressing(c.jid, c.users_domain)
        self._uow = uow_factory(sessionmaker(self.engine), self._clock, local=addr.serves)
        self.search_index = SearchReader(self.engine, cfg.database.url)
        cl = cfg.cluster
        self.membership: Membership | None = None
        shared_limits: SharedLimits | None = None
        self._resyncs = False  # this worker holds the shard of the once-per-cluster resync
        self._domain_policies: list[tuple[str, str]] | None = None  # as last applied to the guard
        if cl.enabled:
            # one of many workers on one PostgreSQL: shards of the outbox, presence shared
            me = cl.worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
            self._cluster_engine = cluster_engine(cfg.database.url)
            store = ClusterStore(self._cluster_engine, me, cl.lease_seconds)
            self.online: OnlineTracker = SharedOnline(store)
            # spamguard's limits, shared at every heartbeat: never a database trip per stanza
            usage = SpamUsage(self._cluster_engine)
            shared_limits = SharedLimits(usage, time.monotonic)
            self._next_usage_expiry = 0.0
            self.membership = Membership(store, cl.heartbeat_seconds, cl.lease_seconds,
                                         on_change=self._shards_changed, on_buried=self._worker_died,
                                         serving=lambda: self.component.online.is_set(),
                                         on_rejoined=lambda: self.online.reshare(),  # type: ignore[attr-defined]
                                         on_beat=lambda: self._share_limits(shared_limits, usage))
        else:
            self.online = OnlineTracker()
        self.signer = Signer(self._uow, self._clock)
        codec = AtomCodec(self.signer)
        blocklists = BlockLists(rtbl_nodes(cfg))
        tx = Transactions(self._uow)
        # the admin's consents, never ended by users' unfollows: block lists and an aggregator's sources
        remote = RemoteFeeds(addr, tx, codec, self._clock, lim.max_items_per_node,
                             frozenset(NodeRef(s, n) for s, n in blocklists.sources)
                             | {firehose_of(s) for s in cfg.aggregator.sources})
        self.guard = Guard(remote.consented, {c.users_domain, c.jid}, GuardLimits(
            sg.local_publishes_per_minute, sg.remote_publishes_per_minute, sg.remote_domain_publishes_per_minute,
            sg.remote_events_per_minute, sg.remote_domain_events_per_minute, sg.subscribes_per_minute,
            sg.owner_changes_per_minute, sg.reports_per_minute, sg.searches_per_minute, sg.im_commands_per_minute,
            sg.max_items_per_event, frozenset(sg.blocked_domains), frozenset(sg.allowed_domains), sg.over_limit),
            blocklists=blocklists, shared=shared_limits)
        # one connection, or (ejabberd's domain_balancing) several that each find their slot
        self.component = connections(component_factory, c.connections, c.connections > 1 or cfg.cluster.enabled,
                                     c.jid, c.secret, c.host, c.port, error_for, c.reconnect_max_delay,
                                     gate=self.guard.gate, max_depth=sg.max_payload_depth,
                                     max_stanza_bytes=lim.max_stanza_bytes, ping_target=c.users_domain)
        requests = Requests(self.component)
        verifier = Verifier(requests, tx, self._clock)
        pipeline = EntryPipeline(remote, verifier, self.guard, lim.max_payload_bytes)
        self.remote = RemoteBlogs(self.component, requests, remote, verifier, pipeline, blocklists)
        agg = cfg.aggregator
        self.sources = Sources(self.component, self.remote, remote, verifier, agg.sources, agg.blocked_sources,
                               agg.max_items)
        self.core = core = build_core(
            tx, addr, self._clock, codec, self.online, self.search_index, remote, self.remote,
            core_limits(cfg), c.admins, delivery_policy(cfg), discovery=discovery_of(cfg),
            firehose_items=cfg.firehose.max_items)
        self.sender = OutboxSender(self._uow, self.component.send_raw_stanza, self.component.online, self._clock,
                                   max_stanza_bytes=lim.max_stanza_bytes, im_body=im_body,
                                   is_remote=lambda jid: not addr.serves(jid),
                                   expire=self._expire_sent, writable=self.component.writable,
                                   processed=lambda: self.component.processed(c.users_domain),
                                   delivered=lambda *args: self.metrics.delivered(*args),
                                   **self._sharing())
        tx.on_commit(self.sender.wake)
        self.metrics = Metrics(addr, lambda: self.guard.drops)
        self.metrics.register(tx.projections)
        # The user directory and the statistics count every blog's posts: one count serves everyone
        # for a while, and a blog protected or deleted leaves them as soon as that is committed.
        self.directory = Snapshot(core.social.directory, SNAPSHOT_SECONDS, time.monotonic)
        self._stats = Snapshot(self._count_stats, SNAPSHOT_SECONDS, time.monotonic)
        for kind in (AccessChanged, NodeDeleted):
            tx.projections.on(kind, self._directory_changed)
        self.roster_adapter = RosterAdapter(core.roster, core.follows, self.component, self.online)
        self.inbound = InboundEvents(c.jid, self.guard, pipeline, core.remote, self.remote)
        # a server that was down and answers again gets what waits for it at once (one worker of a cluster)
        self.recovery = ServerRecovery(requests, core.deliveries, runs=(
            (lambda: self.membership.runs("server-recovery")) if self.membership is not None else (lambda: True)))
        self._versions = Versions(self.engine)
        self._blocklists_seen = 0
        self._presence_seen: int | None = None
        self._reprobed_at = float("-inf")
        if isinstance(self.component, ComponentPool):
            # a connection that takes a slot later (another worker's, or after a reconnect) hears
            # from contacts nobody here asked yet
            self.component.on_slot(self._reprobe)
        if self.membership is not None and blocklists.sources:
            self.inbound.blocklist_changed = self._blocklist_changed
        if self.membership is not None:
            self.remote.runs = self.membership.runs
            self.sources.runs = self.membership.runs
        for adapter in (PubsubAdapter(core.pubsub, self.signer), DiscoAdapter(core.pubsub, core.moderation.admins),
                        ArchiveAdapter(core.archive),
                        MiscAdapter(), CommandsAdapter(core.pubsub, core.moderation, self.guard, core.search,
                                                       core.status, core.social, core.network),
                        VCardAdapter(core.pubsub), BlockingAdapter(core.social), self.roster_adapter,
                        ChatBot(self.component, core.follows, core.posting, core.social, core.search, core.roster,
                                core.moderation, lim.max_payload_bytes, core.accounts, core.status,
                                (cfg.http.base_url or f"http://{cfg.http.listen}") if cfg.http.listen else None,
                                core.deliveries.policy.keep_counts_for.days, core.network),
                        self.inbound,
                        self.remote,
                        Bounces(core.deliveries)):
            adapter.register(self.component)
        self.component.on_online(self.sender.wake)
        if cfg.cluster.enabled or c.connections > 1:
            self.component.on_online(lambda: self.component.background(self._check_host()))
        if c.multicast:
            self.component.on_online(lambda: self.component.background(self._find_multicast()))
            self.component.on_message_error(self._multicast_refused)
        else:
            self.component.on_online(lambda: log.info("multicast: off ([component] multicast = false); "
                                                      "one stanza per follower"))
        self._stop = asyncio.Event()

    def _sharing(self) -> dict[str, Any]:
        """How the outbox sender shares the outbox with the other workers of a cluster."""
        m = self.membership
        if m is None:
            return {}
        return {"shards": m.shards, "batch_lock": m.batch_lock, "idle_poll": CLUSTER_POLL_SECONDS}

    def _shards_changed(self) -> None:
        self.sender.wake()
        # the once-per-cluster resync runs where its shard went (at start-up, it had none yet)
        runs = self.membership is not None and self.membership.runs("resync")
        if runs and not self._resyncs and self.component.online.is_set():
            self.component.background(self.remote.resync())
        self._resyncs = runs

    async def _expire_sent(self) -> int:
        held = self.membership.shards() if self.membership is not None else None
        return await self.core.deliveries.expire_sent(held)

    async def _share_limits(self, shared: SharedLimits, usage: SpamUsage) -> None:
        """After each heartbeat: what spamguard admitted here goes into the cluster's shared
        levels, and theirs come back; one worker forgets the drained levels now and then."""
        m = self.membership
        if m is None:
            return
        await shared.flush(m.live)
        if m.runs("spam-usage-expiry") and time.monotonic() >= self._next_usage_expiry:
            self._next_usage_expiry = time.monotonic() + SPAM_USAGE_EXPIRY_SECONDS
            await usage.expire()

    async def reload_domain_policies(self) -> bool:
        """Apply the admins' run-time domain lists to spamguard if they changed since they were
        last applied here; True if they had."""
        policies = await self.core.moderation.domain_policies()
        if policies == self._domain_policies:
            return False
        if self._domain_policies is not None:
            log.info("domain lists changed: %d run-time entries now", len(policies))
        self._domain_policies = policies
        self.guard.apply_domain_policies(policies)
        return True

    async def follow_shared_lists(self, seconds: float = DOMAIN_POLICY_SECONDS) -> None:
        """A cluster's worker: every `seconds`, read the domain lists again (one small query) and
        apply them when they changed, so an admin command handled by another worker takes
        effect here too; and load the real-time block lists again when a push changed them
        on another worker (the one holding the service JID's slot receives every push). A
        single process needs none of it: what it receives applies at once."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.reload_domain_policies()
            except Exception:  # the lists in force stay; try again next time
                log.warning("domain lists: could not read them again", exc_info=True)
            try:
                await self.reload_blocklists()
            except Exception:
                log.warning("block lists: could not check for changes", exc_info=True)
            try:
                await self._presence_lost_elsewhere()
            except Exception:
                log.warning("presence: could not check whether a worker left", exc_info=True)

    async def _presence_lost_elsewhere(self) -> None:
        """A worker that left took its view of who is online with it: ask everyone again."""
        version = await self._versions.read(PRESENCE)
        if version != self._presence_seen:
            if self._presence_seen is not None:
                self._reprobe()
            self._presence_seen = version

    def _reprobe(self) -> None:
        """Ask every contact for their presence again (at most every REPROBE_SECONDS): a slot
        moved here, or a worker that saw some contacts went away."""
        now = time.monotonic()
        if now - self._reprobed_at < REPROBE_SECONDS or not self.component.online.is_set():
            return
        self._reprobed_at = now
        self.component.background(self.roster_adapter.probe_all())

    async def reload_blocklists(self) -> bool:
        """Load the real-time block lists from their sources again if another worker saw them
        change since this one last did; True if it did."""
        version = await self._versions.read(BLOCKLISTS)
        if version == self._blocklists_seen:
            return False
        self._blocklists_seen = version
        await self.remote.refresh_blocklists()
        log.info("block lists: loaded again after a change another worker received (version %d)", version)
        return True

    def _blocklist_changed(self) -> None:
        async def bump() -> None:
            try:
                self._blocklists_seen = await self._versions.bump(BLOCKLISTS)  # this one is up to date
            except Exception:
                log.warning("block lists: could not tell the other workers of a change", exc_info=True)
        self.component.background(bump())

    def _worker_died(self) -> None:
        # Its connections held slots whose presences it alone saw: ask everyone again,
        # once the slots have moved (a free slot is taken within NO_SLOT_RETRY + probing).
        self.component.loop.call_later(DEAD_WORKER_REPROBE_SECONDS, self._reprobe)

    async def _check_host(self) -> None:
        """Several connections or workers need a host that balances one component domain over
        them (ejabberd's domain_balancing); Prosody keeps one connection per component."""
        domain = self.cfg.component.users_domain
        info = await self.component.disco(domain, NS_DISCO_INFO)
        names = [i.get("name", "") for i in info.iter(f"{{{NS_DISCO_INFO}}}identity")] if info is not None else []
        if any("prosody" in n.lower() for n in names):
            log.warning("the host server %s is Prosody, which accepts one connection per component: this "
                        "process is the only one that can serve %s, over one connection; run several workers "
                        "with ejabberd's domain_balancing (docs/scale-out.md)", domain, self.cfg.component.jid)

    async def _find_multicast(self) -> None:
        """Look for the host's XEP-0033 service after each (re)connect (xmpp/multicast.py)."""
        domain = self.cfg.component.users_domain
        found = await discover(self.component.disco, domain)
        self.sender.multicast = found
        if found is not None:
            log.info("multicast: local fan-out goes through %s, %d addresses per stanza (XEP-0033)",
                     found.service, found.limit)
        else:
            log.info("multicast: %s offers no XEP-0033 service; one stanza per follower", domain)

    async def _multicast_refused(self, req: Request) -> None:
        self.sender.multicast_refused(req.xml.get("id", ""), req.sender, condition(req.xml))

    def request_stop(self) -> None:
        self._stop.set()

    async def prepare(self) -> None:
        """Everything `run` does before connecting, once the database is migrated."""
        await self.reload_domain_policies()
        await self.signer.load()
        # In a cluster only a cold start sends everything again; a worker that joins a running
        # cluster leaves the others' notifications alone (a dead one's are requeued when found).
        if self.membership is None and await live_workers(self.engine, self.cfg.cluster.lease_seconds):
            # it would send every shard's notifications beside them, and its requests' answers
            # would reach their connections
            raise RuntimeError("workers of a cluster are running on this database: start this process with "
                               "the same [cluster] section ([cluster] enabled = true)")
        if self.membership is None or await self.membership.join():
            await self.core.deliveries.requeue_after_restart()

    async def run(self, migrate_first: bool = True) -> None:
        if migrate_first:
            await migrate.upgrade(self.cfg.database.url)
        await self.prepare()
        freeze_startup_objects()
        c = self.cfg.component
        log.info("xmppblog starting: component=%s host=%s:%s users=%s database=%s",
                 c.jid, c.host, c.port, c.users_domain, safe_url(self.cfg.database.url))
        http = await self._start_http()
        sender = asyncio.create_task(self.sender.run(), name="outbox")
        stats = asyncio.create_task(self._flush_stats_every(10.0), name="stats")
        policies = (asyncio.create_task(self.follow_shared_lists(), name="shared lists")
                    if self.membership is not None else None)
        keys = asyncio.create_task(self.signer.run(), name="signing keys")  # rotate-key needs no restart
        recovery = asyncio.create_task(self.recovery.run(), name="servers back")
        sources = asyncio.create_task(self.sources.run(), name="aggregator sources")
        beats = asyncio.create_task(self.membership.run(), name="cluster") if self.membership else None
        self.component.connect()
        try:
            await self._stop.wait()
        finally:
            log.info("shutting down")
            sources.cancel()  # a catch-up cut short is fetched again at the next start
            await asyncio.gather(sources, return_exceptions=True)
            # a cluster's worker leaves within 20 s: what it does not flush, the others send
            await self.component.drain(5.0 if self.membership is not None else 10.0)
            await self.sender.stop()
            try:
                await asyncio.wait_for(sender, timeout=8 if self.membership is not None else 15)
            except TimeoutError:
                log.warning("outbox: flush did not finish; the rest is sent at next start")
            stats.cancel()
            if policies is not None:
                policies.cancel()
                await asyncio.gather(policies, return_exceptions=True)
            keys.cancel()
            recovery.cancel()
            await asyncio.gather(sender, stats, keys, recovery, return_exceptions=True)
            await self._flush_stats()
            if self.membership is not None and beats is not None:
                beats.cancel()  # no heartbeat may renew or take a shard after the leases are given back
                await asyncio.gather(beats, return_exceptions=True)
                await self.online.close()  # type: ignore[attr-defined]
                await self.membership.leave()  # the others take the shards over at their next beat
                with contextlib.suppress(Exception):  # the presences this worker alone saw: others ask again
                    await self._versions.bump(PRESENCE)
            await self.component.close()
            if http is not None:
                await http.cleanup()
            self.search_index.close()
            await self.engine.dispose()
            if self.membership is not None:
                await self._cluster_engine.dispose()
            log.info("stopped")

    async def _directory_changed(self, tx: Tx, event: AccessChanged | NodeDeleted) -> None:
        tx.call_after(self.directory.expire)
        tx.call_after(self._stats.expire)

    def http_api(self) -> HttpApi:
        h = self.cfg.http
        hub = StreamHub(self.core.stream)
        self.core.transactions.on_commit(hub.wake)  # a post committed here is streamed at once
        api = HttpApi(self.core.pubsub, self.core.social, self.core.search, h.base_url or f"http://{h.listen}",
                      self.stats, self.cfg.spamguard.searches_per_minute, self.directory.get, stream=hub,
                      network=self.core.network, sources=self.sources.states)

        async def changed(tx: Any, ev: Any) -> None:
            tx.call_after(api.network_changed)  # once committed: withdrawals show within seconds
        for kind in (ConsentChanged, AccessChanged, ItemRetracted):
            self.core.transactions.projections.on(kind, changed)
        return api

    async def _start_http(self) -> Any:
        if not self.cfg.http.listen:
            return None
        return await start_http(self.http_site(), self.cfg.http.listen, shared=self.cfg.cluster.enabled)

    def http_site(self) -> HttpApi:
        """Everything the HTTP listener serves: pages, API and feeds, /healthz and /metrics, exports."""
        api = self.http_api()
        self.health().register(api.app)
        ExportRoute(self.core.accounts).register(api.app)
        return api

    def health(self) -> Health:
        """/healthz and /metrics over this process's parts."""
        return Health(Probes(self.cfg.component.jid, self._host_problem, self._database_answers,
                             self._disco_round_trip, self._multicast_service, self._refresh_metrics), self.metrics,
                      self.cfg.http.operators_from)

    def _host_problem(self) -> str | None:
        if self.component.online.is_set():
            return None
        if self.membership is not None and self.component.spare:
            return None  # a cluster's spare worker: ready to take the slots of one that dies
        c = self.cfg.component
        return f"not connected to the host server {c.host}:{c.port}" + (
            f" ({self.component.problem})" if self.component.problem else "")

    async def _database_answers(self) -> None:
        await probe.ping(self.engine)

    async def _disco_round_trip(self) -> tuple[bool, dict[str, str]]:
        """disco#info from the service JID to itself and to a blog JID: the host routes both
        back to this process, which answers them, and the answers come back the same way."""
        answers: dict[str, str] = {}
        for jid in (self.addr.service_jid, self.addr.blog_of(f"xmppblog-doctor@{self.addr.users_domain}")):
            if jid is None:
                continue
            started = time.monotonic()
            query = await self.component.disco(jid, NS_DISCO_INFO, timeout=5.0)
            identity = query.find(f"{{{NS_DISCO_INFO}}}identity") if query is not None else None
            answers[jid] = ("no answer within 5 s, or an error" if identity is None else
                            f"{identity.get('category')}/{identity.get('type')} in "
                            f"{(time.monotonic() - started) * 1000:.0f} ms")
        return all(not a.startswith("no answer") for a in answers.values()) and len(answers) == 2, answers

    def _multicast_service(self) -> str | None:
        return self.sender.multicast.service if self.sender.multicast is not None else None

    async def _refresh_metrics(self) -> None:
        await self.metrics.refresh(self._uow, self._clock.now())

    async def stats(self) -> dict[str, Any]:
        """Server statistics for /api/stats, as counted at most SNAPSHOT_SECONDS ago."""
        return await self._stats.get()

    async def _count_stats(self) -> dict[str, Any]:
        blogs = await self.directory.get()
        async with self._uow() as uow:
            return {"service": self.cfg.component.jid, "users_with_public_blogs": len(blogs),
                    "public_posts": sum(n for _, n in blogs), "outbox_waiting": await uow.outbox.pending_count(),
                    "remote_subscriptions": len(await uow.remote.all()),
                    "spamguard_refused_since_start": sum(self.guard.drops.values()),
                    "aggregator_sources": self.sources.states()}

    async def _flush_stats(self) -> None:
        counts = self.guard.take_unflushed()
        if not counts:
            return
        try:
            async with self._uow() as uow:
                await uow.stats.add_drops(dict(counts), self._clock.now())
                await uow.commit()
        except Exception:  # counters are best effort; never let them stop the server
            log.warning("could not store spamguard counters", exc_info=True)

    async def _flush_stats_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            await self._flush_stats()

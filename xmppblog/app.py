# SPDX-License-Identifier: AGPL-3.0-or-later
"""Composition root: the only module that imports every layer.

`App` builds the engine, the service, the component and the adapters from a
`Config`, runs them until asked to stop, and shuts down in order: stop taking
requests, finish in-flight ones, flush the outbox, close the stream, close the
database.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from .config import Config
from .core.addressing import Addressing
from .core.delivery import Deliveries, DeliveryPolicy
from .core.federation import FederationService
from .core.moderation import Moderation
from .core.service import BlogService, Limits
from .core.social import SocialService
from .federation.bounces import Bounces
from .federation.inbound import InboundEvents
from .federation.remote import RemoteBlogs, condition
from .http.server import HttpApi
from .http.server import start as start_http
from .im.commands import ChatBot
from .im.online import OnlineTracker
from .im.reports import BlockingAdapter
from .im.roster import RosterAdapter
from .im.text import im_body
from .im.vcard import VCardAdapter
from .pubsub.errors import error_for
from .pubsub.notify import OutboxSender
from .pubsub.signing import Signer
from .pubsub.xep_0030 import DiscoAdapter, MiscAdapter
from .pubsub.xep_0050 import CommandsAdapter
from .pubsub.xep_0060 import PubsubAdapter
from .pubsub.xep_0277 import AtomCodec
from .spamguard.guard import Guard, as_gate
from .spamguard.guard import Limits as GuardLimits
from .storage import migrate
from .storage.engine import create_engine, sessionmaker
from .storage.repos import uow_factory
from .xmpp.component import BlogComponent, Request
from .xmpp.multicast import discover

log = logging.getLogger(__name__)


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class App:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        c = cfg.component
        self.engine = create_engine(cfg.database.url, cfg.database.sqlite_synchronous.upper())
        clock = SystemClock()
        addr = Addressing(c.jid, c.users_domain)
        uow = uow_factory(sessionmaker(self.engine), clock, local=addr.serves)
        self.component = BlogComponent(c.jid, c.secret, c.host, c.port, error_for, c.reconnect_max_delay)
        f = cfg.federation
        self.deliveries = Deliveries(uow, clock, DeliveryPolicy(
            timedelta(seconds=f.retry_for_seconds), timedelta(seconds=f.keep_sent_seconds),
            f.max_permanent_failures, f.first_retry_seconds))
        self.sender = OutboxSender(uow, self.component.send_raw_stanza, self.component.online, clock,
                                   max_stanza_bytes=cfg.limits.max_stanza_bytes, im_body=im_body,
                                   is_remote=lambda jid: not addr.serves(jid),
                                   expire=self.deliveries.expire_sent, writable=self.component.writable,
                                   processed=lambda: self.component.processed(c.users_domain))
        self.online = OnlineTracker()
        lim = cfg.limits
        self.signer = Signer(uow, clock)
        self.service = BlogService(
            addr, uow, AtomCodec(self.signer), clock,
            Limits(lim.max_payload_bytes, lim.max_items_per_node, lim.max_page_items,
                   min(256 * 1024, lim.max_stanza_bytes // 2)),
            after_commit=self.sender.wake, online=self.online)
        self.social = SocialService(self.service, uow)
        self.federation = FederationService(self.service.addr, uow, AtomCodec(), clock, self.online,
                                            self.service.commit)
        sg = cfg.spamguard
        self.guard = Guard(self.federation.consented, {c.users_domain, c.jid}, GuardLimits(
            sg.local_publishes_per_minute, sg.remote_events_per_minute, sg.remote_domain_events_per_minute,
            sg.subscribes_per_minute, sg.im_commands_per_minute, sg.max_items_per_event,
            frozenset(sg.blocked_domains), frozenset(sg.allowed_domains), sg.over_limit))
        self.component.gate = as_gate(self.guard)
        self.moderation = Moderation(uow, clock, c.admins)
        self.component.max_depth = sg.max_payload_depth
        self._uow = uow
        self._clock = clock
        self.remote = RemoteBlogs(self.component, self.federation, max_payload_bytes=lim.max_payload_bytes,
                                  guard=self.guard)
        self.remote.rtbl = [(s.split(",", 1)[0].strip(), s.split(",", 1)[1].strip()) for s in sg.rtbl_services]
        self.guard.rtbl_sources = set(self.remote.rtbl)
        for adapter in (PubsubAdapter(self.service, self.signer), DiscoAdapter(self.service, self.moderation.admins),
                        MiscAdapter(), CommandsAdapter(self.service, self.moderation, self.guard, self.social),
                        VCardAdapter(self.service), BlockingAdapter(self.social, self.moderation),
                        RosterAdapter(self.social, self.component, self.online, self.remote),
                        ChatBot(self.social, self.component, self.remote, self.moderation),
                        InboundEvents(self.federation, self.guard, lim.max_payload_bytes,
                                      self.remote.stop_pushes, self.remote.verified, self.remote.signs),
                        self.remote,
                        Bounces(self.deliveries)):
            adapter.register(self.component)
        self.component.on_online(self.sender.wake)
        if c.multicast:
            self.component.on_online(lambda: self.component.background(self._find_multicast()))
            self.component.on_message_error(self._multicast_refused)
        else:
            self.component.on_online(lambda: log.info("multicast: off ([component] multicast = false); "
                                                      "one stanza per follower"))
        self._stop = asyncio.Event()

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

    async def run(self, migrate_first: bool = True) -> None:
        if migrate_first:
            await migrate.upgrade(self.cfg.database.url)
        self.guard.apply_domain_policies(await self.moderation.domain_policies())
        await self.signer.load()
        await self.deliveries.requeue_after_restart()
        c = self.cfg.component
        log.info("xmppblog starting: component=%s host=%s:%s users=%s database=%s",
                 c.jid, c.host, c.port, c.users_domain, _safe_url(self.cfg.database.url))
        http = await self._start_http()
        sender = asyncio.create_task(self.sender.run(), name="outbox")
        stats = asyncio.create_task(self._flush_stats_every(10.0), name="stats")
        self.component.connect()
        try:
            await self._stop.wait()
        finally:
            log.info("shutting down")
            await self.component.drain()
            await self.sender.stop()
            try:
                await asyncio.wait_for(sender, timeout=15)
            except TimeoutError:
                log.warning("outbox: flush did not finish; the rest is sent at next start")
            stats.cancel()
            await asyncio.gather(sender, stats, return_exceptions=True)
            await self._flush_stats()
            await self.component.close()
            if http is not None:
                await http.cleanup()
            await self.engine.dispose()
            log.info("stopped")


    async def _start_http(self) -> Any:
        h = self.cfg.http
        if not h.listen:
            return None
        api = HttpApi(self.service, self.social, h.base_url or f"http://{h.listen}", self.stats)
        return await start_http(api, h.listen)

    async def stats(self) -> dict[str, Any]:
        """Server statistics for /api/stats."""
        async with self._uow() as uow:
            blogs = await uow.feed.public_blogs(self.cfg.component.jid)
            return {"service": self.cfg.component.jid, "users_with_public_blogs": len(blogs),
                    "public_posts": sum(n for _, n in blogs), "outbox_waiting": await uow.outbox.pending_count(),
                    "remote_subscriptions": len(await uow.remote.all()),
                    "spamguard_refused_since_start": sum(self.guard.drops.values())}

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


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)

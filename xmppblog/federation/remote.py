# SPDX-License-Identifier: AGPL-3.0-or-later
"""Following remote microblogs, the network half: resolve, subscribe, catch up, re-check
(adapter layer; core.ports.RemoteDirectory).

Resolution of a user JID:
1. an xmppblog service on the user's domain (disco#items of the domain, then a
   disco#info feature `urn:xmppblog:0` with its `users_domain`) -> their blog JID;
2. otherwise the user's own PEP microblog node (XEP-0277 at their bare JID);
3. otherwise NoMicroblog. A blog JID or an xmpp: URI with ;node= is used directly.
Fetched entries go through the same entry pipeline as pushed ones
(federation/receive.py). Remote errors are never passed on verbatim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..core import errors
from ..core.jid import parse
from ..core.model import NS_MICROBLOG, Actor, NodeRef, SubState
from ..core.remote_feeds import RemoteFeeds
from ..core.uri import parse_uri
from ..protocol import NS_ATOM, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_FIREHOSE, NS_PUBSUB, NS_RSM
from ..spamguard.rtbl import BlockLists
from ..xmpp.component import BlogComponent
from .iq import Requests
from .receive import EntryPipeline
from .verify import Verifier

log = logging.getLogger(__name__)

P = f"{{{NS_PUBSUB}}}"
CATCH_UP_ITEMS = 20
CATCH_UP_PAGES = 5
#: another server's firehose (an aggregator's source) is caught up deeper: a day of a busy server
FIREHOSE_CATCH_UP_ITEMS = 50
FIREHOSE_CATCH_UP_PAGES = 100
#: a firehose's catch-up is verified and stored this many posts at a time, oldest first
FIREHOSE_STORE_BATCH = 200
#: how far back a new consumer of a firehose fetches
FIREHOSE_BACKFILL = timedelta(hours=24)
RESYNC_EVERY = 6 * 3600.0
PROTECTED = ("not-allowed", "not-authorized", "forbidden", "registration-required")


def _pubsub(action: str, **attrs: str) -> ET.Element:
    ps = ET.Element(P + "pubsub")
    ET.SubElement(ps, P + action, attrs)
    return ps


class RemoteBlogs:
    def __init__(self, component: BlogComponent, requests: Requests, remote: RemoteFeeds, verifier: Verifier,
                 pipeline: EntryPipeline, blocklists: BlockLists) -> None:
        self.component = component
        self.requests = requests
        self.remote = remote
        self.verifier = verifier
        self.pipeline = pipeline
        self.blocklists = blocklists
        self.service_jid = remote.addr.service_jid
        #: whether this process runs a once-per-cluster job now (a cluster's worker: if it holds
        #: the job's shard, cluster/membership.py); every block list is loaded by every worker
        self.runs: Callable[[str], bool] = lambda job: True

    def register(self, component: BlogComponent) -> None:
        component.on_online(lambda: component.background(self.resync()))
        component.loop.call_later(RESYNC_EVERY, self._periodic)

    def _periodic(self) -> None:
        """Re-check subscriptions every RESYNC_EVERY seconds while connected."""
        if self.component.stopping:
            return
        if self.component.online.is_set():
            self.component.background(self.resync())
        self.component.loop.call_later(RESYNC_EVERY, self._periodic)

    # ------------------------------------------------------------ resolution

    async def resolve(self, target: str) -> tuple[str, NodeRef]:
        """(author, remote node) for a user JID, blog JID or xmpp: URI.

        Raises:
            InvalidJid, NoMicroblog, RemoteUnavailable.
        """
        uri = parse_uri(target)
        if uri.ref is not None:
            return uri.jid, uri.ref
        j = parse(uri.jid)
        if not j.local:
            raise errors.NoMicroblog(f"{j.bare} is a server, not a person")
        users_domain = await self.verifier.users_domain(j.domain)
        if users_domain is not None:  # already a blog JID on an xmppblog service
            return f"{j.local}@{users_domain}" if users_domain else j.bare, NodeRef(j.bare, NS_MICROBLOG)
        # 1. an xmppblog service among the domain's disco items
        with contextlib.suppress(errors.RemoteUnavailable):
            items = await self.requests.get(j.domain, ET.Element(f"{{{NS_DISCO_ITEMS}}}query"))
            for item in items.iter(f"{{{NS_DISCO_ITEMS}}}item"):
                service = item.get("jid", "")
                if service and not item.get("node") and await self.verifier.users_domain(service) is not None:
                    return j.bare, NodeRef(f"{j.local}@{service}", NS_MICROBLOG)
        # 2. PEP (XEP-0163): Prosody hides node disco from non-contacts, but an open
        # node's items are readable by anyone, and that is what we can follow.
        with contextlib.suppress(errors.RemoteUnavailable):
            await self.requests.get(j.bare, _pubsub("items", node=NS_MICROBLOG, max_items="1"))
            return j.bare, NodeRef(j.bare, NS_MICROBLOG)
        raise errors.NoMicroblog(f"{j.bare} has no microblog we can follow")

    # ------------------------------------------------------------ subscriptions

    async def subscribe(self, ref: NodeRef) -> SubState:
        """Subscribe as this service. PENDING: unreachable, retried later; NONE: protected node."""
        try:
            reply = await self.requests.set(ref.service, _pubsub("subscribe", node=ref.node, jid=self.service_jid))
        except errors.RemoteUnavailable as exc:
            if exc.condition in PROTECTED:
                log.info("remote node is protected: service=%s node=%s (%s)", ref.service, ref.node, exc.condition)
                await self.remote.confirmed(ref, SubState.NONE)
                return SubState.NONE
            log.warning("remote subscribe failed: service=%s node=%s (%s); will retry",
                        ref.service, ref.node, exc.condition or "no answer")
            return SubState.PENDING
        state = _state_of(reply)
        if state is SubState.PENDING:
            # Pending approval means a protected node: servers only follow public blogs.
            await self.unsubscribe(ref)
            await self.remote.confirmed(ref, SubState.NONE)
            return SubState.NONE
        await self.remote.confirmed(ref, state)
        log.info("remote subscription: service=%s node=%s state=%s", ref.service, ref.node, state)
        if state is SubState.SUBSCRIBED:
            await self.catch_up(ref)
        return state

    async def answers(self, service: str) -> bool:
        """Whether `service` answers a disco#info request now."""
        try:
            await self.requests.get(service, ET.Element(f"{{{NS_DISCO_INFO}}}query"))
        except errors.RemoteUnavailable as exc:
            return exc.condition not in ("", "remote-server-not-found", "remote-server-timeout",
                                         "service-unavailable")
        return True

    async def unsubscribe(self, ref: NodeRef) -> None:
        try:
            await self.requests.set(ref.service, _pubsub("unsubscribe", node=ref.node, jid=self.service_jid))
        except errors.RemoteUnavailable as exc:
            log.warning("remote unsubscribe failed: service=%s node=%s: %s", ref.service, ref.node, exc.text)

    async def publish(self, actor: Actor, ref: NodeRef, draft: object) -> str:
        """Publish a comment on another server's node, from the actor's blog JID.

        A component may only send from its own domain, so the remote service sees
        `alice@blog.example.org`, the blog address of `alice@example.org`.
        """
        blog = self.remote.addr.blog_of(actor.jid)
        if blog is None:
            raise errors.Forbidden("only local users can reply")
        ps = ET.Element(P + "pubsub")
        item = ET.SubElement(ET.SubElement(ps, P + "publish", {"node": ref.node}), P + "item")
        item.append(draft.entry)  # type: ignore[attr-defined]
        try:
            reply = await self.requests.set(ref.service, ps, frm=blog)
        except errors.RemoteUnavailable as exc:
            raise errors.RemoteUnavailable(f"{ref.service} refused the reply ({exc.condition or 'no answer'})",
                                           exc.condition) from None
        published = reply.find(f"{P}pubsub/{P}publish/{P}item")
        log.info("remote comment published: by=%s service=%s node=%s", actor.jid, ref.service, ref.node)
        return published.get("id", "") if published is not None else ""

    async def catch_up(self, ref: NodeRef) -> int:
        """Fetch what we missed: pages of the newest items (XEP-0059), back to the newest one we
        already hold (at most CATCH_UP_PAGES pages; a firehose, FIREHOSE_CATCH_UP_PAGES), stored
        oldest first, without chat."""
        known = await self.remote.last_item_id(ref)
        items: list[ET.Element] = []
        after: str | None = None
        firehose = ref.node == NS_FIREHOSE
        size = FIREHOSE_CATCH_UP_ITEMS if firehose else CATCH_UP_ITEMS
        for _ in range(FIREHOSE_CATCH_UP_PAGES if firehose else CATCH_UP_PAGES):
            ps = _pubsub("items", node=ref.node)
            rsm = ET.SubElement(ps, f"{{{NS_RSM}}}set")
            ET.SubElement(rsm, f"{{{NS_RSM}}}max").text = str(size)
            if after is not None:
                ET.SubElement(rsm, f"{{{NS_RSM}}}after").text = after
            reply = await self.requests.get(ref.service, ps)
            page = reply.findall(f"{P}pubsub/{P}items/{P}item")[:size]  # never more than asked for
            ids = [i.get("id") for i in page]
            items += page
            last = reply.find(f"{P}pubsub/{{{NS_RSM}}}set/{{{NS_RSM}}}last")
            # stop at what we hold, at the end, or when the peer does not page (Prosody 0.12).
            # A firehose: at a page we hold all of (an edit brings an old post we hold to the
            # top, above what we missed), or a day back (a new consumer's backfill); its pages
            # may be shorter than asked for
            if firehose:
                wanted = {i for i in ids if i}
                done = (not wanted or _older_than(page[-1], FIREHOSE_BACKFILL)
                        or await self.remote.holds(ref, sorted(wanted)) == wanted)
            else:
                done = known in ids or len(page) < size
            if done or last is None or not last.text or last.text == after:
                break
            after = last.text
        items.reverse()  # oldest first
        if not firehose:
            return (await self.pipeline.receive(ref.service, ref.node, items, [], notify=False)).stored
        stored = 0
        for at in range(0, len(items), FIREHOSE_STORE_BATCH):  # bounded transactions, the loop breathes
            stored += (await self.pipeline.receive(ref.service, ref.node, items[at:at + FIREHOSE_STORE_BATCH], [],
                                                   notify=False)).stored
            await asyncio.sleep(0)
        return stored

    # ------------------------------------------------------------ block lists and resync

    async def follow_blocklist(self, ref: NodeRef) -> None:
        """Subscribe to a real-time block list and load its current entries."""
        await self.remote.reserve(ref)  # consent: the admin configured it
        try:
            reply = await self.requests.set(ref.service, _pubsub("subscribe", node=ref.node, jid=self.service_jid))
            await self.remote.confirmed(ref, _state_of(reply))
            items = await self.requests.get(ref.service, _pubsub("items", node=ref.node))
        except errors.RemoteUnavailable as exc:
            log.warning("rtbl %s %s unavailable (%s); retried at the next resync", ref.service, ref.node, exc.text)
            return
        ids = [i.get("id", "") for i in items.findall(f"{P}pubsub/{P}items/{P}item") if i.get("id")]
        self.blocklists.apply((ref.service, ref.node), ids, purge=True)
        log.info("rtbl %s %s: %d entries", ref.service, ref.node, len(self.blocklists))

    async def refresh_blocklists(self) -> None:
        """Load every real-time block list's current entries again (no new subscription): a
        cluster's worker, after another one received a push."""
        for service, node in sorted(self.blocklists.sources):
            try:
                items = await self.requests.get(service, _pubsub("items", node=node))
            except errors.RemoteUnavailable as exc:
                log.warning("rtbl %s %s unavailable (%s); retried at its next change or resync", service, node,
                            exc.text)
                continue
            ids = [i.get("id", "") for i in items.findall(f"{P}pubsub/{P}items/{P}item") if i.get("id")]
            self.blocklists.apply((service, node), ids, purge=True)

    async def resync(self) -> None:
        """At start-up and every RESYNC_EVERY: check every subscription we hold (XEP-0060 §5.6),
        re-subscribe, fetch what we missed."""
        for service, node in sorted(self.blocklists.sources):
            await self.follow_blocklist(NodeRef(service, node))
        if not self.runs("resync"):
            return
        try:
            held = await self.remote.held()
        except errors.BlogError:
            log.warning("remote resync: database unavailable")
            return
        for sub in held:
            ref = NodeRef(sub.service, sub.node)
            if self.blocklists.is_source(sub.service, sub.node):
                continue
            try:
                reply = await self.requests.get(sub.service, _pubsub("subscriptions", node=sub.node))
                states = [s.get("subscription") for s in reply.iter(P + "subscription")
                          if parse(s.get("jid", "x")).bare == self.service_jid]
                if "subscribed" not in states:
                    await self.subscribe(ref)
                else:
                    await self.remote.confirmed(ref, SubState.SUBSCRIBED)
                    await self.catch_up(ref)
            except errors.BlogError as exc:
                log.warning("remote resync failed: service=%s node=%s: %s", sub.service, sub.node, exc.text)
            await asyncio.sleep(0)
        if held:
            log.info("remote resync: checked %d subscription(s)", len(held))


def _older_than(item: ET.Element, age: timedelta) -> bool:
    """Whether the entry of `item` was published more than `age` ago (False if it says nothing
    readable: keep going)."""
    published = item.find(f"{{{NS_ATOM}}}entry/{{{NS_ATOM}}}published")
    try:
        when = datetime.fromisoformat((published.text or "").strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return datetime.now(UTC) - when > age


def _state_of(reply: ET.Element) -> SubState:
    sub = reply.find(f"{P}pubsub/{P}subscription")
    try:
        return SubState(sub.get("subscription", "subscribed")) if sub is not None else SubState.SUBSCRIBED
    except ValueError:
        return SubState.PENDING

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Following remote microblogs: resolve, subscribe, unsubscribe, re-check (adapter layer).

Resolution of a user JID (issue #4):
1. an xmppblog service on the user's domain (disco#items of the domain, then a
   disco#info feature `urn:xmppblog:0` with its `users_domain`) -> their blog JID;
2. otherwise the user's own PEP microblog node (XEP-0277 at their bare JID);
3. otherwise NoMicroblog. A blog JID or an xmpp: URI with ;node= is used directly.
Remote errors are never passed on verbatim: they become RemoteUnavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import xml.etree.ElementTree as ET
from urllib.parse import unquote

from slixmpp.exceptions import IqError, IqTimeout

from ..core import errors
from ..core.federation import FederationService, RemoteEntry
from ..core.jid import parse
from ..core.model import NS_MICROBLOG, Actor, NodeRef, SubState
from ..pubsub.signing import NS_KEYS_NODE, parse_keys, verify
from ..pubsub.xep_0277 import parse_entry
from ..spamguard.guard import Guard
from ..xmpp.component import BlogComponent
from ..xmpp.namespaces import NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PUBSUB, NS_RSM, NS_STANZAS, NS_XMPPBLOG

log = logging.getLogger(__name__)

P = f"{{{NS_PUBSUB}}}"
KEYS_TTL = 3600.0
CATCH_UP_ITEMS = 20
CATCH_UP_PAGES = 5
RESYNC_EVERY = 6 * 3600.0


def condition(stanza: ET.Element) -> str:
    """The defined condition of an error stanza, whatever namespace its <error/> is in.

    (slixmpp's Error plugin only looks in jabber:client; a component stream says
    jabber:component:accept.)
    """
    for err in stanza:
        if err.tag.endswith("}error") or err.tag == "error":
            for child in err:
                if child.tag.startswith(f"{{{NS_STANZAS}}}") and not child.tag.endswith("}text"):
                    return child.tag.split("}", 1)[1]
    return "undefined-condition"


class RemoteBlogs:
    def __init__(self, component: BlogComponent, fed: FederationService, timeout: float = 10.0,
                 max_payload_bytes: int = 65536, guard: Guard | None = None) -> None:
        self.component = component
        self.fed = fed
        self.timeout = timeout
        self.max_payload_bytes = max_payload_bytes
        self.service_jid = fed.addr.service_jid
        self.guard = guard
        self._keys: dict[str, tuple[float, dict[str, bytes] | None]] = {}
        #: configured real-time block lists: (service JID, node)
        self.rtbl: list[tuple[str, str]] = []

    def register(self, component: BlogComponent) -> None:
        component.on_online(lambda: component.background(self.resync()))
        component.loop.call_later(RESYNC_EVERY, self._periodic)

    def _periodic(self) -> None:
        """Re-check subscriptions every RESYNC_EVERY seconds while connected (issue #4)."""
        if self.component.stopping:
            return
        if self.component.online.is_set():
            self.component.background(self.resync())
        self.component.loop.call_later(RESYNC_EVERY, self._periodic)

    async def _iq(self, to: str, itype: str, payload: ET.Element) -> ET.Element:
        iq = self.component.make_iq(ito=to, ifrom=self.service_jid, itype=itype)
        iq.append(payload)
        try:
            reply = await iq.send(timeout=self.timeout)
        except IqError as exc:
            raise errors.RemoteUnavailable(f"{to} refused ({condition(exc.iq.xml)})") from None
        except IqTimeout:
            raise errors.RemoteUnavailable(f"{to} did not answer") from None
        return reply.xml

    # ------------------------------------------------------------ signatures

    async def keys_of(self, service: str, refresh: bool = False) -> dict[str, bytes] | None:
        """The signing keys of an xmppblog service, None if `service` is no xmppblog (cached 1 h).

        Raises:
            RemoteUnavailable: an xmppblog service whose keys could not be fetched.
        """
        now = time.monotonic()
        cached = self._keys.get(service)
        if cached is not None and cached[0] > now and not refresh:
            return cached[1]
        if await self._is_xmppblog(service) is None:
            keys = None
        else:
            ps = ET.Element(P + "pubsub")
            ET.SubElement(ps, P + "items", {"node": NS_KEYS_NODE})
            reply = await self._iq(service, "get", ps)
            keys = parse_keys(reply.findall(f"{P}pubsub/{P}items/{P}item"))
        self._keys[service] = (now + KEYS_TTL, keys)
        return keys

    async def signs(self, origin: str) -> bool:
        """True if `origin`'s service is an xmppblog server (its entries must be, and are, verified)."""
        try:
            return await self.keys_of(parse(origin).domain) is not None
        except errors.RemoteUnavailable:
            return False

    async def verified(self, origin: str, node: str, entries: list[RemoteEntry]) -> list[RemoteEntry]:
        """Entries whose signature checks out when `origin` is an xmppblog server (issue #5)."""
        if not entries:
            return entries
        service = parse(origin).domain
        try:
            keys = await self.keys_of(service)
        except errors.RemoteUnavailable:
            for e in entries:
                self._drop(origin, node, e.item_id, "unverifiable: keys unavailable")
            return []
        if keys is None:
            return entries  # a plain XEP-0060 service (PEP…): nothing to verify against
        out = []
        for e in entries:
            problem = verify(e.draft.entry, keys)  # type: ignore[attr-defined]
            if problem == "unknown-signing-key":
                keys = await self.keys_of(service, refresh=True) or {}  # the peer may have rotated
                problem = verify(e.draft.entry, keys)  # type: ignore[attr-defined]
            if problem:
                self._drop(origin, node, e.item_id, problem)
            else:
                out.append(e)
        return out

    def _drop(self, origin: str, node: str, item_id: str, reason: str) -> None:
        if self.guard is not None:
            self.guard.drop_item(origin, node, item_id, reason)
        else:
            log.info("item dropped: origin=%s node=%s item=%s reason=%s", origin, node, item_id, reason)

    # ------------------------------------------------------------ resolution

    async def _is_xmppblog(self, jid: str) -> str | None:
        """The users_domain of an xmppblog service at `jid`, or None."""
        try:
            info = await self._iq(jid, "get", ET.Element(f"{{{NS_DISCO_INFO}}}query"))
        except errors.RemoteUnavailable:
            return None
        features = {f.get("var") for f in info.iter(f"{{{NS_DISCO_INFO}}}feature")}
        if NS_XMPPBLOG not in features:
            return None
        for x in info.iter(f"{{{NS_DATA}}}x"):
            for field in x.findall(f"{{{NS_DATA}}}field"):
                if field.get("var") == "users_domain":
                    value = field.find(f"{{{NS_DATA}}}value")
                    if value is not None and value.text:
                        return value.text
        return ""

    async def resolve(self, target: str) -> tuple[str, NodeRef]:
        """(author, remote node) for a user JID, blog JID or xmpp: URI.

        Raises:
            InvalidJid, NoMicroblog, RemoteUnavailable.
        """
        raw = target.strip()
        if raw.startswith("xmpp:"):
            path, _, query = raw[5:].partition("?")
            params = dict(p.split("=", 1) for p in query.split(";") if "=" in p)
            j = parse(unquote(path))
            if "node" in params:
                return j.bare, NodeRef(j.bare, unquote(params["node"]))
            raw = j.bare
        j = parse(raw)
        if not j.local:
            raise errors.NoMicroblog(f"{j.bare} is a server, not a person")
        users_domain = await self._is_xmppblog(j.domain)
        if users_domain is not None:  # already a blog JID on an xmppblog service
            return f"{j.local}@{users_domain}" if users_domain else j.bare, NodeRef(j.bare, NS_MICROBLOG)
        # 1. an xmppblog service among the domain's disco items
        with contextlib.suppress(errors.RemoteUnavailable):
            items = await self._iq(j.domain, "get", ET.Element(f"{{{NS_DISCO_ITEMS}}}query"))
            for item in items.iter(f"{{{NS_DISCO_ITEMS}}}item"):
                service = item.get("jid", "")
                if service and not item.get("node") and await self._is_xmppblog(service) is not None:
                    return j.bare, NodeRef(f"{j.local}@{service}", NS_MICROBLOG)
        # 2. PEP (XEP-0163): Prosody hides node disco from non-contacts, but an open
        # node's items are readable by anyone, and that is what we can follow.
        with contextlib.suppress(errors.RemoteUnavailable):
            ps = ET.Element(P + "pubsub")
            ET.SubElement(ps, P + "items", {"node": NS_MICROBLOG, "max_items": "1"})
            await self._iq(j.bare, "get", ps)
            return j.bare, NodeRef(j.bare, NS_MICROBLOG)
        raise errors.NoMicroblog(f"{j.bare} has no microblog we can follow")

    # ------------------------------------------------------------ subscriptions

    async def follow(self, actor: Actor, target: str) -> tuple[str, SubState, bool]:
        """Follow a remote user; returns (author, state, already).

        Raises:
            Forbidden: the remote blog is protected; its readers must ask the owner themselves.
        """
        author, ref = await self.resolve(target)
        follow = await self.fed.follow(actor, author, ref)
        state = SubState.SUBSCRIBED
        if follow.first:
            state = await self.subscribe(ref)
        if state is SubState.NONE:
            await self.unfollow_ref(actor, ref)
            raise errors.Forbidden(
                f"{author}'s blog is protected: add {ref.service} to your roster to ask {author} for access")
        return author, state, follow.already

    async def subscribe(self, ref: NodeRef) -> SubState:
        """Subscribe as this service. PENDING: unreachable, retried later; NONE: protected node."""
        ps = ET.Element(P + "pubsub")
        ET.SubElement(ps, P + "subscribe", {"node": ref.node, "jid": self.service_jid})
        iq = self.component.make_iq(ito=ref.service, ifrom=self.service_jid, itype="set")
        iq.append(ps)
        try:
            reply = (await iq.send(timeout=self.timeout)).xml
        except IqError as exc:
            cond = condition(exc.iq.xml)
            if cond in ("not-allowed", "not-authorized", "forbidden", "registration-required"):
                log.info("remote node is protected: service=%s node=%s (%s)", ref.service, ref.node, cond)
                return SubState.NONE
            log.warning("remote subscribe failed: service=%s node=%s (%s); will retry",
                        ref.service, ref.node, cond)
            return SubState.PENDING
        except IqTimeout:
            log.warning("remote subscribe timed out: service=%s node=%s; will retry", ref.service, ref.node)
            return SubState.PENDING
        sub = reply.find(f"{P}pubsub/{P}subscription")
        state = SubState(sub.get("subscription", "subscribed")) if sub is not None else SubState.SUBSCRIBED
        if state is SubState.PENDING:
            # Pending approval means a protected node: servers only follow public blogs.
            await self._unsubscribe(ref)
            return SubState.NONE
        await self.fed.confirmed(ref, state)
        log.info("remote subscription: service=%s node=%s state=%s", ref.service, ref.node, state)
        if state is SubState.SUBSCRIBED:
            await self.catch_up(ref, notify=False)
        return state

    async def unfollow(self, actor: Actor, target: str) -> str:
        author, ref = await self.resolve(target)
        await self.unfollow_ref(actor, ref)
        return author

    async def unfollow_ref(self, actor: Actor, ref: NodeRef) -> None:
        if await self.fed.unfollow(actor, ref):
            await self._unsubscribe(ref)
            log.info("remote unsubscribe: service=%s node=%s (last local follower left)", ref.service, ref.node)

    async def stop_pushes(self, ref: NodeRef) -> None:
        """Ask a service that pushes a node we do not follow to drop our subscription."""
        log.info("unsolicited pushes: asking %s to unsubscribe us from %s", ref.service, ref.node)
        await self._unsubscribe(ref)

    async def _unsubscribe(self, ref: NodeRef) -> None:
        ps = ET.Element(P + "pubsub")
        ET.SubElement(ps, P + "unsubscribe", {"node": ref.node, "jid": self.service_jid})
        try:
            await self._iq(ref.service, "set", ps)
        except errors.RemoteUnavailable as exc:
            log.warning("remote unsubscribe failed: service=%s node=%s: %s", ref.service, ref.node, exc.text)

    async def publish(self, actor: Actor, ref: NodeRef, draft: object) -> str:
        """Publish a comment on another server's node, from the actor's blog JID.

        A component may only send from its own domain, so the remote service sees
        `alice@blog.example.org`, the blog address of `alice@example.org`.
        """
        blog = self.fed.addr.blog_of(actor.jid)
        if blog is None:
            raise errors.Forbidden("only local users can reply")
        ps = ET.Element(P + "pubsub")
        item = ET.SubElement(ET.SubElement(ps, P + "publish", {"node": ref.node}), P + "item")
        item.append(ET.fromstring(self.fed.codec_raw(draft)))
        iq = self.component.make_iq(ito=ref.service, ifrom=blog, itype="set")
        iq.append(ps)
        try:
            reply = (await iq.send(timeout=self.timeout)).xml
        except IqError as exc:
            raise errors.RemoteUnavailable(f"{ref.service} refused the reply ({condition(exc.iq.xml)})") from None
        except IqTimeout:
            raise errors.RemoteUnavailable(f"{ref.service} did not answer") from None
        published = reply.find(f"{P}pubsub/{P}publish/{P}item")
        log.info("remote comment published: by=%s service=%s node=%s", actor.jid, ref.service, ref.node)
        return published.get("id", "") if published is not None else ""

    async def catch_up(self, ref: NodeRef, notify: bool = False) -> int:
        """Fetch what we missed: pages of the newest items (XEP-0059), back to the
        newest one we already hold (at most CATCH_UP_PAGES pages), stored oldest first."""
        known = await self.fed.last_item_id(ref)
        items: list[ET.Element] = []
        after: str | None = None
        for _ in range(CATCH_UP_PAGES):
            ps = ET.Element(P + "pubsub")
            ET.SubElement(ps, P + "items", {"node": ref.node})
            rsm = ET.SubElement(ps, f"{{{NS_RSM}}}set")
            ET.SubElement(rsm, f"{{{NS_RSM}}}max").text = str(CATCH_UP_ITEMS)
            if after is not None:
                ET.SubElement(rsm, f"{{{NS_RSM}}}after").text = after
            reply = await self._iq(ref.service, "get", ps)
            page = reply.findall(f"{P}pubsub/{P}items/{P}item")
            ids = [i.get("id") for i in page]
            items += page
            last = reply.find(f"{P}pubsub/{{{NS_RSM}}}set/{{{NS_RSM}}}last")
            # stop at what we hold, at the end, or when the peer does not page (Prosody 0.12)
            if known in ids or len(page) < CATCH_UP_ITEMS or last is None or not last.text or last.text == after:
                break
            after = last.text
        entries = []
        for item in reversed(items):
            try:
                entries.append(RemoteEntry(item.get("id", ""), parse_entry(item, self.max_payload_bytes), ""))
            except errors.BlogError:
                continue
        entries = await self.verified(ref.service, ref.node, [e for e in entries if e.item_id])
        return await self.fed.ingest(ref.service, ref.node, entries, notify=notify)

    async def follow_rtbl(self, ref: NodeRef) -> None:
        """Subscribe to a real-time block list and load its current entries (issue #5)."""
        if self.guard is None:
            return
        self.guard.rtbl_sources.add((ref.service, ref.node))
        await self.fed.confirmed(ref, SubState.PENDING)  # consent: the admin configured it
        state = await self.subscribe_only(ref)
        try:
            ps = ET.Element(P + "pubsub")
            ET.SubElement(ps, P + "items", {"node": ref.node})
            reply = await self._iq(ref.service, "get", ps)
        except errors.RemoteUnavailable as exc:
            log.warning("rtbl %s %s unavailable (%s); retried at the next resync", ref.service, ref.node, exc.text)
            return
        ids = {i.get("id", "").lower() for i in reply.findall(f"{P}pubsub/{P}items/{P}item") if i.get("id")}
        self.guard.rtbl |= ids
        log.info("rtbl %s %s: %d entries (subscription %s)", ref.service, ref.node, len(ids), state)

    async def subscribe_only(self, ref: NodeRef) -> SubState:
        ps = ET.Element(P + "pubsub")
        ET.SubElement(ps, P + "subscribe", {"node": ref.node, "jid": self.service_jid})
        try:
            reply = await self._iq(ref.service, "set", ps)
        except errors.RemoteUnavailable:
            return SubState.PENDING
        sub = reply.find(f"{P}pubsub/{P}subscription")
        state = SubState(sub.get("subscription", "subscribed")) if sub is not None else SubState.SUBSCRIBED
        await self.fed.confirmed(ref, state)
        return state

    async def resync(self) -> None:
        """At start-up: check every subscription we hold (§5.6), re-subscribe, fetch what we missed."""
        if self.guard is not None:
            for service, node in list(self.rtbl):
                await self.follow_rtbl(NodeRef(service, node))
        try:
            held = await self.fed.held()
        except errors.BlogError:
            log.warning("remote resync: database unavailable")
            return
        for sub in held:
            ref = NodeRef(sub.service, sub.node)
            if self.guard is not None and (sub.service, sub.node) in self.guard.rtbl_sources:
                continue
            try:
                ps = ET.Element(P + "pubsub")
                ET.SubElement(ps, P + "subscriptions", {"node": sub.node})
                reply = await self._iq(sub.service, "get", ps)
                states = [s.get("subscription") for s in reply.iter(P + "subscription")
                          if parse(s.get("jid", "x")).bare == self.service_jid]
                if "subscribed" not in states:
                    await self.subscribe(ref)
                else:
                    await self.fed.confirmed(ref, SubState.SUBSCRIBED)
                    await self.catch_up(ref, notify=False)
            except errors.BlogError as exc:
                log.warning("remote resync failed: service=%s node=%s: %s", sub.service, sub.node, exc.text)
            await asyncio.sleep(0)
        if held:
            log.info("remote resync: checked %d subscription(s)", len(held))

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Signed entries from other xmppblog servers: who signs, with which keys (adapter layer).

A service is an xmppblog server when its disco#info answers with the feature
`urn:xmppblog:0`; its entries must then carry a valid signature by one of the
keys it publishes on `urn:xmppblog:keys:0` (pubsub/signing.py). Three rules
keep this from failing open:

* no answer is not "not an xmppblog": entries that cannot be checked are
  dropped (`unverifiable`), and nothing about the service is cached;
* keys are pinned on first sight (trust on first use, in the database): a
  domain that once signed must keep signing, even if it stops advertising the
  feature, and a new key is trusted only when published beside a pinned one;
* an unknown key id costs at most one key refresh per push and per domain
  every REFRESH_COOLDOWN seconds; a refresh that fails keeps the pinned keys.
"""

from __future__ import annotations

import logging
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ..core import errors
from ..core.jid import parse
from ..core.ports import Clock
from ..core.transactions import Transactions
from ..protocol import NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_KEYS_NODE, NS_PUBSUB, NS_XMPPBLOG
from ..pubsub.signing import parse_keys, verify
from .iq import Requests

log = logging.getLogger(__name__)

P = f"{{{NS_PUBSUB}}}"
#: how long an answered disco#info and a fetched key set are trusted before asking again
PEER_TTL = 3600.0
#: at most one key refresh per domain this often (an unknown key id asks once, not per entry)
REFRESH_COOLDOWN = 300.0


@dataclass(frozen=True, slots=True)
class Peer:
    """What a service said about itself."""

    answered: bool                  # False: no answer (unreachable, timeout)
    xmppblog: bool = False
    users_domain: str | None = None


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome for one entry: signed, unsigned from a plain service, or dropped."""

    signed: bool
    reason: str = ""                # a drop reason, '' when the entry may be stored


class Verifier:
    def __init__(self, requests: Requests, transactions: Transactions, clock: Clock) -> None:
        self._requests = requests
        self._tx = transactions
        self._clock = clock
        self._peers: dict[str, tuple[float, Peer]] = {}
        self._keys: dict[str, tuple[float, dict[str, bytes]]] = {}
        self._pins: dict[str, tuple[float, dict[str, bytes] | None]] = {}
        self._refreshed: dict[str, float] = {}

    # ------------------------------------------------------------ who is it

    async def peer(self, service: str) -> Peer:
        """What `service` says of itself (answers cached PEER_TTL, silence never cached; a users
        domain that could not be asked to confirm, REFRESH_COOLDOWN)."""
        now = time.monotonic()
        cached = self._peers.get(service)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            info = await self._requests.get(service, ET.Element(f"{{{NS_DISCO_INFO}}}query"))
        except errors.RemoteUnavailable:
            return Peer(answered=False)
        features = {f.get("var") for f in info.iter(f"{{{NS_DISCO_INFO}}}feature")}
        xmppblog = NS_XMPPBLOG in features
        ttl = PEER_TTL
        users_domain = None
        if xmppblog:
            users_domain = await self._confirmed_users_domain(service, _users_domain(info))
            if users_domain is None:  # the users domain did not answer: ask again soon
                users_domain, ttl = "", REFRESH_COOLDOWN
        peer = Peer(True, xmppblog, users_domain)
        self._peers[service] = (now + ttl, peer)
        return peer

    async def _confirmed_users_domain(self, service: str, claimed: str) -> str | None:
        """The users domain a service advertises, if that domain agrees: its disco#items list the
        service (as resolution finds it, federation/remote.py). Otherwise '' (its own domain only):
        a service cannot claim to speak for another server's users. None: the domain did not answer."""
        if not claimed or claimed == service:
            return ""
        try:
            items = await self._requests.get(claimed, ET.Element(f"{{{NS_DISCO_ITEMS}}}query"))
        except errors.RemoteUnavailable:
            return None
        if any(_same_jid(i.get("jid", ""), service) and not i.get("node")
               for i in items.iter(f"{{{NS_DISCO_ITEMS}}}item")):
            return claimed
        log.warning("users domain not confirmed: %s claims the users of %s, which does not list it", service,
                    claimed)
        return ""

    async def users_domain(self, service: str) -> str | None:
        """The users domain an xmppblog service at `service` advertises and that domain confirmed
        ('' if none); None if it is no xmppblog server (or did not answer)."""
        peer = await self.peer(service)
        return (peer.users_domain or "") if peer.xmppblog else None

    # ------------------------------------------------------------ keys

    async def _pinned(self, domain: str, fresh: bool = False) -> dict[str, bytes] | None:
        """The keys pinned for `domain`: read from the store when asked `fresh` (before keys are
        fetched and pinned) or at most once per PEER_TTL, not on every push."""
        now = time.monotonic()
        cached = self._pins.get(domain)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        async with self._tx() as tx:
            pinned = await tx.peers.get(domain)
        self._pins[domain] = (now + PEER_TTL, pinned)
        return pinned

    async def _fetch(self, domain: str, pinned: dict[str, bytes] | None) -> dict[str, bytes] | None:
        """The keys `domain` publishes, as far as they may be trusted; None if it did not answer."""
        ps = ET.Element(P + "pubsub")
        ET.SubElement(ps, P + "items", {"node": NS_KEYS_NODE})
        try:
            reply = await self._requests.get(domain, ps)
        except errors.RemoteUnavailable:
            return None
        published = parse_keys(reply.findall(f"{P}pubsub/{P}items/{P}item"))
        pinned = pinned or {}
        if pinned and not any(published.get(k) == raw for k, raw in pinned.items()):
            # No pinned key among them: whoever answers now may not be who signed before.
            log.warning("signing keys of %s changed without a pinned key beside them; keeping the pinned ones",
                        domain)
            return dict(pinned)
        new = {k: raw for k, raw in published.items() if k not in pinned}
        if new:
            async with self._tx() as tx:
                await tx.peers.pin(domain, new, self._clock.now())
                await tx.commit()
            self._pins.pop(domain, None)
            log.info("signing keys pinned: domain=%s keys=%s", domain, ",".join(sorted(new)))
        return {**published, **pinned}  # a key id pinned once keeps its pinned key

    async def _keys_of(self, domain: str, refresh: bool = False) -> dict[str, bytes] | None:
        now = time.monotonic()
        cached = self._keys.get(domain)
        if cached is not None and cached[0] > now and not refresh:
            return cached[1]
        pinned = await self._pinned(domain, fresh=True)
        keys = await self._fetch(domain, pinned)
        if keys is None:
            return pinned  # unreachable: what was pinned still verifies
        self._keys[domain] = (now + PEER_TTL, keys)
        return keys

    # ------------------------------------------------------------ a push

    async def check(self, origin: str, entries: list[ET.Element]) -> tuple[list[Checked], str | None]:
        """The verdict on each entry of one push or page from `origin`, and the users domain
        the origin advertises (None if it is no xmppblog server)."""
        domain = parse(origin).domain
        peer = await self.peer(domain)
        pinned = await self._pinned(domain)
        if not peer.xmppblog and pinned is None:
            if not peer.answered:
                return [Checked(False, "unverifiable")] * len(entries), None
            return [Checked(False)] * len(entries), None  # a plain XEP-0060 service (PEP…)
        keys = await self._keys_of(domain) if peer.answered else pinned
        if not keys:
            return [Checked(False, "unverifiable")] * len(entries), peer.users_domain
        problems = [verify(e, keys) for e in entries]
        if "unknown-signing-key" in problems and self._may_refresh(domain):
            keys = await self._keys_of(domain, refresh=True) or keys  # the peer may have rotated
            problems = [verify(e, keys) if p == "unknown-signing-key" else p
                        for e, p in zip(entries, problems, strict=True)]
        return [Checked(p is None, p or "") for p in problems], peer.users_domain

    def _may_refresh(self, domain: str) -> bool:
        now = time.monotonic()
        if self._refreshed.get(domain, 0.0) > now - REFRESH_COOLDOWN:
            return False
        self._refreshed[domain] = now
        return True


def _users_domain(info: ET.Element) -> str:
    for x in info.iter(f"{{{NS_DATA}}}x"):
        for field in x.findall(f"{{{NS_DATA}}}field"):
            if field.get("var") == "users_domain":
                value = field.find(f"{{{NS_DATA}}}value")
                if value is not None and value.text:
                    return value.text.strip()
    return ""


def _same_jid(a: str, b: str) -> bool:
    try:
        return parse(a).bare == parse(b).bare
    except errors.InvalidJid:
        return False

# SPDX-License-Identifier: AGPL-3.0-or-later
"""Inbound pubsub events from other servers -> spamguard -> FederationService (adapter layer).

Order as in Synapse's _handle_received_pdu: parse, check origin and consent,
then persist. Drops are silent. One bad item does not sink the others.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

from ..core import errors
from ..core.federation import FederationService, RemoteEntry
from ..core.jid import bare
from ..core.model import NodeRef, SubState
from ..pubsub.xep_0277 import parse_entry
from ..spamguard.guard import Guard, RemotePush
from ..xmpp.component import BlogComponent, Request
from ..xmpp.namespaces import NS_ATOM, NS_PUBSUB_EVENT

log = logging.getLogger(__name__)

EV = f"{{{NS_PUBSUB_EVENT}}}"
A = f"{{{NS_ATOM}}}"


class InboundEvents:
    def __init__(self, fed: FederationService, guard: Guard, max_payload_bytes: int,
                 unsubscribe: Callable[[NodeRef], Awaitable[None]] | None = None,
                 verified: Callable[[str, str, list[RemoteEntry]], Awaitable[list[RemoteEntry]]] | None = None,
                 signs: Callable[[str], Awaitable[bool]] | None = None) -> None:
        self.fed = fed
        self._verified = verified
        self._signs_cb = signs
        self.guard = guard
        self.max_payload_bytes = max_payload_bytes
        self._unsubscribe = unsubscribe
        self._told: set[tuple[str, str]] = set()

    def register(self, component: BlogComponent) -> None:
        component.on_message(self.on_message)

    async def on_message(self, req: Request) -> None:
        event = req.xml.find(EV + "event")
        if event is None or req.to != self.fed.addr.service_jid:
            return
        origin = req.sender
        for child in event:
            kind = child.tag[len(EV):] if child.tag.startswith(EV) else ""
            node = child.get("node", "")
            if kind == "items":
                items, retracts = child.findall(EV + "item"), child.findall(EV + "retract")
                push = RemotePush(origin, node, len(items) + len(retracts), "items")
            elif kind in ("purge", "delete", "subscription"):
                push = RemotePush(origin, node, 0, kind)
            else:
                continue
            verdict = await self.guard.check(push)
            if not verdict.accepted:
                await self._tell_to_stop(origin, node, verdict.reason)
                continue
            if (origin, node) in self.guard.rtbl_sources:
                self._rtbl(origin, node, child)
                continue
            if kind == "items":
                await self._items(origin, node, items, retracts)
            elif kind == "purge":
                await self.fed.purge(origin, node)
            elif kind == "delete" or (kind == "subscription" and child.get("subscription") == "none"):
                log.info("remote node ended our subscription: origin=%s node=%s (%s)", origin, node, kind)
                await self.fed.confirmed(NodeRef(origin, node), SubState.NONE)

    async def _signs(self, origin: str) -> bool:
        """Is `origin` an xmppblog server whose entries carry verified signatures?"""
        return self._signs_cb is not None and await self._signs_cb(origin)

    def _rtbl(self, origin: str, node: str, child: ET.Element) -> None:
        """A real-time block list changed: item ids are sha256 of blocked JIDs or domains."""
        added = [i.get("id", "").lower() for i in child.findall(EV + "item") if i.get("id")]
        removed = [r.get("id", "").lower() for r in child.findall(EV + "retract") if r.get("id")]
        if child.tag == EV + "purge":
            self.guard.rtbl.clear()
        self.guard.rtbl.update(added)
        self.guard.rtbl.difference_update(removed)
        log.info("rtbl update from %s %s: +%d -%d (now %d entries)", origin, node, len(added), len(removed),
                 len(self.guard.rtbl))

    async def _tell_to_stop(self, origin: str, node: str, reason: str) -> None:
        """A service that keeps pushing a node we do not follow gets one unsubscribe (issue #5),
        in case it holds a stale subscription of ours; never more, so spam gets no echo."""
        if reason != "no-subscription" or self._unsubscribe is None or "/" in origin:
            return
        key = (origin, node)
        if key in self._told or len(self._told) > 10_000:
            return
        self._told.add(key)
        await self._unsubscribe(NodeRef(origin, node))

    async def _items(self, origin: str, node: str, items: list[ET.Element], retracts: list[ET.Element]) -> None:
        owner = await self.fed.owner_of(NodeRef(origin, node))
        entries = []
        for item in items:
            item_id = item.get("id", "")
            if not item_id:
                self.guard.drop_item(origin, node, "", "no-item-id")
                continue
            try:
                draft = parse_entry(item, self.max_payload_bytes)
            except errors.BlogError as exc:
                self.guard.drop_item(origin, node, item_id, f"invalid-entry: {exc.text}")
                continue
            uri = draft.entry.find(f"{A}author/{A}uri")
            author = (uri.text or "").removeprefix("xmpp:") if uri is not None else ""
            try:
                author = bare(author) if author else ""
            except errors.InvalidJid:
                author = "invalid"
            # Entries must match their origin: the node owner wrote them, or they are reposts
            # that say so (<link rel='via'/>) and credit the original.
            repost = any(link.get("rel") == "via" for link in draft.entry.findall(f"{A}link"))
            # A node owned by a service (no local part: a public timeline, a news feed) relays many
            # authors; an xmppblog one is covered by its signatures (RemoteBlogs.verified).
            relay = bool(owner) and "@" not in (owner or "") and await self._signs(origin)
            if author and owner and author != owner and not repost and not relay:
                self.guard.drop_item(origin, node, item_id, f"author-mismatch: claims {author[:64]}")
                continue
            entries.append(RemoteEntry(item_id, draft, author))
        if entries and self._verified is not None:
            entries = await self._verified(origin, node, entries)
        if entries:
            await self.fed.ingest(origin, node, entries)
        ids = [r.get("id", "") for r in retracts if r.get("id")]
        if ids:
            await self.fed.retract(origin, node, ids)

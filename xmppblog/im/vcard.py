# SPDX-License-Identifier: AGPL-3.0-or-later
"""vcard-temp (XEP-0054) for blog JIDs: the owner's name, so rosters show it (adapter layer)."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET

from ..core import errors
from ..core.model import NS_MICROBLOG, NodeRef, PageRequest
from ..core.pubsub import PubsubService
from ..protocol import NS_VCARD
from ..xmpp.component import BlogComponent, Request
from ..pubsub.xep_0277 import A, entry_of

V = f"{{{NS_VCARD}}}"


class VCardAdapter:
    def __init__(self, service: PubsubService) -> None:
        self.service = service

    def register(self, component: BlogComponent) -> None:
        component.on_iq(NS_VCARD, "get", self.get_vcard)

    async def get_vcard(self, req: Request, el: ET.Element) -> ET.Element:
        if req.to == self.service.addr.service_jid:
            card = ET.Element(V + "vCard")
            ET.SubElement(card, V + "FN").text = "xmppblog"
            ET.SubElement(card, V + "DESC").text = "Microblogging service. Send 'help' to get started."
            return card
        owner = self.service.owner_of(req.to)
        name = owner.split("@")[0]
        with contextlib.suppress(errors.BlogError):  # protected or empty: the local part is all we say
            page = await self.service.get_items(req.actor, NodeRef(req.to, NS_MICROBLOG), page=PageRequest(max=1))
            # the name the owner gives in their own posts (not a publisher affiliate's)
            entry = entry_of(page.items[0].payload) if page.items and page.items[0].publisher == owner else None
            found = entry.find(f"{A}author/{A}name") if entry is not None else None
            if found is not None and found.text:
                name = found.text
        card = ET.Element(V + "vCard")
        ET.SubElement(card, V + "FN").text = name
        ET.SubElement(card, V + "NICKNAME").text = name
        ET.SubElement(card, V + "JABBERID").text = owner
        ET.SubElement(card, V + "DESC").text = f"Microblog of {owner}"
        return card

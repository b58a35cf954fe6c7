# SPDX-License-Identifier: AGPL-3.0-or-later
"""Blocking with an abuse report (XEP-0191 + XEP-0377) sent to the service JID (adapter layer).

`<block><item jid='…'><report reason='urn:xmpp:reporting:spam'>…` blocks the JID
for the sender (like the `block` chat command) and files a report for admins,
all items of one request in one transaction. Reports come from users of this
server only, at most MAX_ITEMS per request (and spamguard limits the requests).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..core import errors
from ..core.social import Report, SocialService
from ..protocol import NS_BLOCKING, NS_REPORTING
from ..xmpp.component import BlogComponent, Request

B = f"{{{NS_BLOCKING}}}"
R = f"{{{NS_REPORTING}}}"
MAX_ITEMS = 20


class BlockingAdapter:
    def __init__(self, social: SocialService) -> None:
        self.social = social

    def register(self, component: BlogComponent) -> None:
        component.on_iq(NS_BLOCKING, "set", self.set_block)

    async def set_block(self, req: Request, el: ET.Element) -> None:
        if req.to != self.social.addr.service_jid:
            raise errors.NodeNotFound("send blocks and reports to the service JID")
        if el.tag not in (B + "block", B + "unblock"):
            raise errors.BadRequest("expected <block/> or <unblock/>")
        items = el.findall(B + "item")
        if not items or any(not i.get("jid") for i in items):
            raise errors.BadRequest("each <item/> needs a jid")
        if len(items) > MAX_ITEMS:
            raise errors.BadRequest(f"block at most {MAX_ITEMS} JIDs per request")
        if el.tag == B + "unblock":
            await self.social.unblock(req.actor, *(i.get("jid", "") for i in items))
            return None
        blocks = []
        for item in items:
            report = item.find(R + "report")
            text = report.find(R + "text") if report is not None else None
            blocks.append((item.get("jid", ""), None if report is None else Report(
                report.get("reason", ""), (text.text or "") if text is not None else "")))
        await self.social.block_and_report(req.actor, blocks)
        return None
